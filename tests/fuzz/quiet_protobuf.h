#pragma once
// For the targets that parse proto bytes: protobuf logs every string field with invalid UTF-8 it
// refuses, and the fuzzer makes millions. Include from exactly one .cc per fuzz target (it
// defines libFuzzer's LLVMFuzzerInitialize).

#include <google/protobuf/stubs/logging.h>

#include <string>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}
