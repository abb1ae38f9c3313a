# Installs the build tree to a temporary prefix, then builds and runs a consumer program
# (examples/metrics_arrays.c) against it twice: with find_package(cleval) and with pkg-config
# (ctest -P). -DBUILD_DIR=... -DWORK_DIR=... -DSOURCE_DIR=... -DC_COMPILER=...
# -DC_FLAGS=... (the sanitizers of a sanitized build).
set(prefix ${WORK_DIR}/prefix)
set(consumer_source ${SOURCE_DIR}/examples/metrics_arrays.c)
file(REMOVE_RECURSE ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "failed (${code}): ${ARGV}\n${out}\n${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

# The consumer prints a report whose accuracy is 9 right of 12.
function(check_consumer program)
  run(${CMAKE_COMMAND} -E env "LD_LIBRARY_PATH=${prefix}/lib" ${program})
  if(NOT run_output MATCHES "\"accuracy\":[ \t]*0.75,")
    message(FATAL_ERROR "${program}: unexpected report:\n${run_output}")
  endif()
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
if(EXISTS ${prefix}/include/cleval)
  message(FATAL_ERROR "internal headers were installed: ${prefix}/include/cleval")
endif()

# find_package(cleval)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package -B ${WORK_DIR}/cmake-build
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER}
    -DCONSUMER_SOURCE=${consumer_source} "-DCMAKE_C_FLAGS=${C_FLAGS}")
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
check_consumer(${WORK_DIR}/cmake-build/consumer)

# pkg-config
find_program(PKG_CONFIG pkg-config REQUIRED)
file(GLOB pc_dirs ${prefix}/lib*/pkgconfig ${prefix}/lib/*/pkgconfig)
file(GLOB shared_libraries ${prefix}/lib*/libcleval.so ${prefix}/lib/*/libcleval.so)
if(NOT shared_libraries)
  set(static --static) # a static libcleval.a: its dependencies' libraries too
endif()
run(${CMAKE_COMMAND} -E env "PKG_CONFIG_PATH=${pc_dirs}" ${PKG_CONFIG} ${static} --cflags --libs
    cleval)
string(STRIP "${run_output}" flags)
separate_arguments(flags UNIX_COMMAND "${flags} ${C_FLAGS}")
run(${C_COMPILER} -std=c11 -Wall -Wextra -Werror ${consumer_source} ${flags}
    -o ${WORK_DIR}/consumer-pkg-config)
check_consumer(${WORK_DIR}/consumer-pkg-config)
