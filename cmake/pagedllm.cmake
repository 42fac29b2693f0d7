# pagedllm_library(NAME SRCS ... DEPS ...): a static library with the repo root on its include path.
function(pagedllm_library NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${NAME} STATIC ${ARG_SRCS})
  target_include_directories(${NAME} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/proto_gen)
  target_link_libraries(${NAME} PUBLIC ${ARG_DEPS})
  pagedllm_warnings(${NAME})
endfunction()

# pagedllm_test(NAME SRCS ... DEPS ... LABELS ...): a GoogleTest binary registered with ctest.
function(pagedllm_test NAME)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_definitions(${NAME} PRIVATE
      PAGEDLLM_SOURCE_DIR="${PROJECT_SOURCE_DIR}" PAGEDLLM_BINARY_DIR="${PROJECT_BINARY_DIR}")
  pagedllm_warnings(${NAME})
  if(NOT ARG_LABELS)
    set(ARG_LABELS cpu)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${NAME} COMMAND ${NAME})
  set_tests_properties(${NAME} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
endfunction()

function(pagedllm_warnings NAME)
  target_compile_options(${NAME} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Werror=return-type>)
  target_compile_definitions(${NAME} PRIVATE OMPI_SKIP_MPICXX=1)
endfunction()
