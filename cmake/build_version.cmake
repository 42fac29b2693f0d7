# Run at every build (cmake -P): writes OUTPUT, a line defining PAGEDLLM_BUILD_VERSION as
# "<VERSION>+g<commit>" ("<VERSION>" outside a git checkout), and touches it only when the text
# changes, so that a build of the same commit recompiles nothing.
execute_process(
  COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE failed)
set(version "${VERSION}")
if(NOT failed AND commit)
  set(version "${VERSION}+g${commit}")
endif()
set(text "#define PAGEDLLM_BUILD_VERSION \"${version}\"\n")
set(old "")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUTPUT}" "${text}")
endif()
