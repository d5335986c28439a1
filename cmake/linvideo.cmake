# Helpers that keep each area's CMakeLists.txt to a couple of lines.

# One precompiled LibTorch header shared by every target that uses LibTorch (compiled once).
function(linvideo_torch_pch target)
  if(NOT TARGET linvideo_torch_pch)
    return()
  endif()
  # Targets without LibTorch (linvideo_library(... NO_TORCH), e.g. media/) must not get the PCH.
  get_target_property(no_torch ${target} LINVIDEO_NO_TORCH)
  if(no_torch)
    return()
  endif()
  target_precompile_headers(${target} REUSE_FROM linvideo_torch_pch)
  # gRPC's and prometheus' flags bring -pthread (_REENTRANT); the PCH is built with it too, so
  # every user compiles with it, or GCC silently ignores the PCH and parses torch.h again.
  target_compile_options(${target} PRIVATE -pthread)
  # The PCH is built with -fPIC; executables would otherwise get -fPIE and reject it.
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(${target} PRIVATE -fPIC)
  endif()
endfunction()

# linvideo_library(NAME <target> DIR <dir> [NO_TORCH] [DEPS ...] [EXCLUDE file.cc ...]): a static
# library from DIR/*.cc (non-recursive) minus the EXCLUDE'd file names. NO_TORCH: the library does
# not use LibTorch (no PCH; tests linking only such libraries get none either).
function(linvideo_library)
  cmake_parse_arguments(A "NO_TORCH" "NAME;DIR" "DEPS;SOURCES;EXCLUDE" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${A_DIR}/*.cc)
  foreach(x ${A_EXCLUDE})
    list(FILTER srcs EXCLUDE REGEX "/${x}$")
  endforeach()
  list(APPEND srcs ${A_SOURCES})
  if(srcs)
    add_library(${A_NAME} STATIC ${srcs})
    set_target_properties(${A_NAME} PROPERTIES LINVIDEO_NO_TORCH "${A_NO_TORCH}")
    target_include_directories(${A_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
    target_link_libraries(${A_NAME} PUBLIC ${A_DEPS})
    linvideo_torch_pch(${A_NAME})
  else()
    add_library(${A_NAME} INTERFACE)
    set_target_properties(${A_NAME} PROPERTIES LINVIDEO_NO_TORCH "${A_NO_TORCH}")
    target_include_directories(${A_NAME} INTERFACE ${PROJECT_SOURCE_DIR})
    target_link_libraries(${A_NAME} INTERFACE ${A_DEPS})
  endif()
endfunction()

# linvideo_tests(DIR <tests/...> LIBS <libs> [LABELS ...] [USES_ALL_CORES] [EXCLUDE x_test.cc ...]):
# one executable per *_test.cc but the EXCLUDE'd ones. USES_ALL_CORES marks tests that start
# LibTorch processes of their own (the e2e tests run the server binaries); tests linking LibTorch
# in-process are marked automatically.
function(linvideo_tests)
  cmake_parse_arguments(A "USES_ALL_CORES" "DIR" "LIBS;LABELS;EXCLUDE" ${ARGN})
  file(GLOB tests CONFIGURE_DEPENDS ${A_DIR}/*_test.cc)
  foreach(x ${A_EXCLUDE})
    list(FILTER tests EXCLUDE REGEX "/${x}$")
  endforeach()
  foreach(t ${tests})
    get_filename_component(name ${t} NAME_WE)
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR}/tests ${A_DIR})
    string(REPLACE "/" "_" prefix ${rel})
    set(exe ${prefix}_${name})
    add_executable(${exe} ${t})
    # No PCH when every library under test is NO_TORCH (the test then has no LibTorch headers).
    set(exe_no_torch TRUE)
    foreach(lib ${A_LIBS})
      if(NOT TARGET ${lib})
        set(exe_no_torch FALSE)
      else()
        get_target_property(lib_no_torch ${lib} LINVIDEO_NO_TORCH)
        if(NOT lib_no_torch)
          set(exe_no_torch FALSE)
        endif()
      endif()
    endforeach()
    set_target_properties(${exe} PROPERTIES LINVIDEO_NO_TORCH ${exe_no_torch})
    linvideo_torch_pch(${exe})
    target_link_libraries(${exe} PRIVATE ${A_LIBS} linvideo_test_main GTest::gtest)
    target_include_directories(${exe} PRIVATE ${PROJECT_SOURCE_DIR})
    target_compile_definitions(${exe} PRIVATE LINVIDEO_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                               LINVIDEO_BINARY_DIR="${PROJECT_BINARY_DIR}")
    add_test(NAME ${exe} COMMAND ${exe} WORKING_DIRECTORY ${PROJECT_BINARY_DIR})
    # A binary whose every test called GTEST_SKIP (no GPU, no opt-in parity data) exits with 77
    # (tests/test_main.cc) and shows as skipped, not passed. (An output regex such as "PASSED 0
    # tests" would also match a binary whose only test failed, and report the failure as a skip.)
    set_tests_properties(${exe} PROPERTIES SKIP_RETURN_CODE 77)
    # A LibTorch process uses every core (InitRuntime), and two of them time-sliced on the same
    # cores are not 2x but ~15x slower each (measured: train_test 13 s -> 200 s beside
    # default_model_test, whose 41 s became 205 s; BLAS/OpenMP threads spin at barriers while
    # their partner is descheduled). So under `ctest -j` such tests run one at a time; the
    # single-threaded NO_TORCH tests still run beside them.
    if(NOT exe_no_torch OR A_USES_ALL_CORES)
      set_tests_properties(${exe} PROPERTIES RESOURCE_LOCK linvideo_all_cores)
    endif()
    set(labels ${A_LABELS})
    if(name MATCHES "_gpu_test$")
      list(APPEND labels gpu)
    endif()
    if(labels)
      set_tests_properties(${exe} PROPERTIES LABELS "${labels}")
    endif()
  endforeach()
endfunction()

# linvideo_forbid_links(TARGET <t> FORBID <libs...>): fails the configure step when <t> links any
# of <libs> directly or through other targets (the layering of docs/architecture.md, e.g. the
# server never links the research libraries).
function(linvideo_forbid_links)
  cmake_parse_arguments(A "" "TARGET" "FORBID" ${ARGN})
  set(seen "")
  set(todo ${A_TARGET})
  while(todo)
    list(POP_FRONT todo t)
    if(NOT TARGET ${t} OR t IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${t})
    if(t IN_LIST A_FORBID)
      message(FATAL_ERROR "${A_TARGET} links ${t}, which the layering forbids (docs/architecture.md)")
    endif()
    get_target_property(type ${t} TYPE)
    set(deps "")
    if(NOT type STREQUAL "INTERFACE_LIBRARY")
      get_target_property(deps ${t} LINK_LIBRARIES)
    endif()
    get_target_property(ideps ${t} INTERFACE_LINK_LIBRARIES)
    foreach(d ${deps} ${ideps})
      if(d AND NOT d MATCHES "NOTFOUND$" AND TARGET ${d})
        list(APPEND todo ${d})
      endif()
    endforeach()
  endwhile()
endfunction()
