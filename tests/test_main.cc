// main() of every test binary: gtest_main's, except that a binary in which no test passed or
// failed but at least one was skipped (GTEST_SKIP: no GPU, no opt-in parity data, a missing
// optional tool) exits with 77, which ctest reports as "Skipped" (SKIP_RETURN_CODE). A failure
// always stays a failure.
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  const ::testing::UnitTest* unit = ::testing::UnitTest::GetInstance();
  if (rc == 0 && unit->successful_test_count() == 0 && unit->skipped_test_count() > 0) return 77;
  return rc;
}
