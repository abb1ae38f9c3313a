# Runs an example program and the CLI on the same input and compares their reports (ctest -P):
#   -DEXAMPLE=program -DEXAMPLE_ARGS=a;b -DCLI=cleval -DCLI_ARGS=a;b -DMODE=accuracy|json
# accuracy: the example prints "accuracy: X" with X the text of the CLI's "accuracy".
# json: the example prints the CLI's JSON report, timings aside. Both must exit with EXPECT_CODE
# (0 when not given).
if(NOT DEFINED EXPECT_CODE)
  set(EXPECT_CODE 0)
endif()
execute_process(COMMAND ${CLI} ${CLI_ARGS} OUTPUT_VARIABLE cli_out RESULT_VARIABLE cli_code)
execute_process(COMMAND ${EXAMPLE} ${EXAMPLE_ARGS} OUTPUT_VARIABLE example_out
                RESULT_VARIABLE example_code)
if(NOT cli_code EQUAL EXPECT_CODE OR NOT example_code EQUAL EXPECT_CODE)
  message(FATAL_ERROR "exit codes: cli ${cli_code}, example ${example_code} (expected "
                      "${EXPECT_CODE})\n${example_out}")
endif()
if(MODE STREQUAL "accuracy")
  if(NOT cli_out MATCHES "\"accuracy\":[ \t]*([0-9.eE+-]+)")
    message(FATAL_ERROR "no accuracy in the CLI's report:\n${cli_out}")
  endif()
  set(expected "accuracy: ${CMAKE_MATCH_1}\n")
  string(FIND "${example_out}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "expected '${expected}' in:\n${example_out}")
  endif()
else()
  foreach(var cli_out example_out)
    string(REGEX REPLACE "\"(total_s|samples_per_s|read_s|wait_s)\":[^\n]*\n" "" ${var}
                         "${${var}}")
    string(STRIP "${${var}}" ${var})
  endforeach()
  if(NOT cli_out STREQUAL example_out)
    message(FATAL_ERROR "reports differ:\nCLI:\n${cli_out}\nexample:\n${example_out}")
  endif()
endif()
