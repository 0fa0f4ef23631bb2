include(GoogleTest)

# t2_cc_library(NAME <name> [SRCS ...] [DEPS ...] [PRIVATE_DEPS ...])
#   One library per lib/ folder: public headers under include/t2/<name>/, alias t2::<name>.
function(t2_cc_library)
  cmake_parse_arguments(T2 "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target t2_${T2_NAME})
  if(T2_SRCS)
    add_library(${target} STATIC ${T2_SRCS})
    target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                                         PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
    target_link_libraries(${target} PUBLIC ${T2_DEPS} PRIVATE ${T2_PRIVATE_DEPS})
    target_compile_options(${target} PRIVATE ${T2_WARNINGS})
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_link_libraries(${target} INTERFACE ${T2_DEPS})
  endif()
  add_library(t2::${T2_NAME} ALIAS ${target})
endfunction()

# t2_sanitizer_test_env(<test>...)
#   In a sanitizer build, the runtime options (top-level CMakeLists.txt) for these tests and
#   every process they start, for ctest by hand too.
function(t2_sanitizer_test_env)
  if(T2_SANITIZE OR T2_TSAN)
    foreach(test IN LISTS ARGN)
      set_property(TEST ${test} APPEND PROPERTY ENVIRONMENT ${T2_SANITIZER_TEST_ENV})
    endforeach()
  endif()
endfunction()

# t2_cc_test(NAME <name> SRCS ... DEPS ... [LABELS ...] [FIXTURES ...] [TIMEOUT s] [ENV ...]
#            [COST s] [PER_TEST])
#   A GoogleTest binary registered with ctest as one test (one process: a suite that loads a
#   model loads it once). PER_TEST, for binaries that load no model: one ctest entry per
#   GoogleTest test, named <name>.<Suite>.<Test>, so ctest runs them in parallel and a failure
#   names its test. Listed when ctest runs (PRE_TEST), not at build time: a sanitizer build's
#   binaries then start under their runtime options only. TIMEOUT applies to each entry.
#   Left out (not even compiled) when T2_TEST_LABELS is set and has none of its LABELS.
#   COST: the seconds the test takes on the 2-core machine, for the slow ones. ctest -j starts
#   tests in descending cost, so the short ones fill the other core around the long ones;
#   ctest learns costs from earlier runs, but a fresh clone has none.
function(t2_cc_test)
  cmake_parse_arguments(T2 "PER_TEST" "NAME;TIMEOUT;COST" "SRCS;DEPS;LABELS;FIXTURES;ENV" ${ARGN})
  if(T2_TEST_LABELS)
    # A build that runs only some labels (scripts/sanitize.sh) does not compile the others.
    set(wanted FALSE)
    foreach(label IN LISTS T2_LABELS)
      if(label IN_LIST T2_TEST_LABELS)
        set(wanted TRUE)
      endif()
    endforeach()
    if(NOT wanted)
      return()
    endif()
  endif()
  add_executable(${T2_NAME} ${T2_SRCS})
  target_link_libraries(${T2_NAME} PRIVATE ${T2_DEPS} GTest::gmock GTest::gtest_main)
  target_compile_options(${T2_NAME} PRIVATE ${T2_WARNINGS} ${T2_TEST_CODE_OPTIONS})
  if(NOT T2_TIMEOUT)
    set(T2_TIMEOUT 600)
  endif()
  set(env "T2_FIXTURES=${T2_FIXTURES_DIR}" "T2_PYTHON=${T2_PYTHON}" "T2_SOURCE_DIR=${PROJECT_SOURCE_DIR}" ${T2_ENV})
  if(T2_SANITIZE OR T2_TSAN)
    list(APPEND env ${T2_SANITIZER_TEST_ENV})
  endif()
  if(T2_PER_TEST)
    # The environment goes on the command line (`env A=1 B=2 <binary> --gtest_filter=...`,
    # through the target's CROSSCOMPILING_EMULATOR, which prefixes every test command and the
    # discovery run): gtest_discover_tests cannot carry a list-valued ENVIRONMENT property.
    set_target_properties(${T2_NAME} PROPERTIES CROSSCOMPILING_EMULATOR "env;${env}")
    list(LENGTH T2_LABELS n_labels)
    if(n_labels GREATER 1)
      message(FATAL_ERROR "t2_cc_test(${T2_NAME} PER_TEST): one label at most")
    endif()
    set(properties TIMEOUT ${T2_TIMEOUT})
    if(T2_LABELS)
      list(APPEND properties LABELS ${T2_LABELS})
    endif()
    if(T2_FIXTURES)
      message(FATAL_ERROR "t2_cc_test(${T2_NAME} PER_TEST): a binary with fixtures runs as one test")
    endif()
    gtest_discover_tests(${T2_NAME} TEST_PREFIX "${T2_NAME}." DISCOVERY_MODE PRE_TEST
                         DISCOVERY_TIMEOUT 60 EXTRA_ARGS --gtest_brief=1 PROPERTIES ${properties})
    return()
  endif()
  add_test(NAME ${T2_NAME} COMMAND ${T2_NAME} --gtest_brief=1)
  set_tests_properties(${T2_NAME} PROPERTIES TIMEOUT ${T2_TIMEOUT} ENVIRONMENT "${env}")
  if(T2_LABELS)
    set_tests_properties(${T2_NAME} PROPERTIES LABELS "${T2_LABELS}")
  endif()
  if(T2_FIXTURES)
    set_tests_properties(${T2_NAME} PROPERTIES FIXTURES_REQUIRED "${T2_FIXTURES}")
  endif()
  if(T2_COST)
    set_tests_properties(${T2_NAME} PROPERTIES COST ${T2_COST})
  endif()
endfunction()

# t2_fixture_script(NAME <test> FIXTURE <fixture> SCRIPT <file.py> OUT <dir under fixtures/>
#                   [LABELS ...] [TIMEOUT s])
#   A Python step that writes reference data before the tests that require <fixture>. It runs
#   through tests/testing/cached_fixture.py: the output is kept under $T2_HOME keyed by the
#   script, the packages and the model, so it is computed again only when one of them changes.
function(t2_fixture_script)
  cmake_parse_arguments(T2 "" "NAME;FIXTURE;SCRIPT;OUT;TIMEOUT" "LABELS" ${ARGN})
  add_test(NAME ${T2_NAME}
    COMMAND ${T2_PYTHON} ${PROJECT_SOURCE_DIR}/tests/testing/cached_fixture.py
            --out ${T2_FIXTURES_DIR}/${T2_OUT} -- ${T2_SCRIPT})
  if(NOT T2_TIMEOUT)
    set(T2_TIMEOUT 600)
  endif()
  set_tests_properties(${T2_NAME} PROPERTIES FIXTURES_SETUP ${T2_FIXTURE} TIMEOUT ${T2_TIMEOUT})
  if(T2_LABELS)
    set_tests_properties(${T2_NAME} PROPERTIES LABELS "${T2_LABELS}")
  endif()
endfunction()
