# ctest entries that build tests/consumer, a project using aria as a library (issue 16), included from
# tests/CMakeLists.txt:
#   consumer_install          cmake --install of this build (no rebuild) into a fresh prefix
#   consumer_find_package     find_package(aria) from that prefix; builds and runs the README examples
#   consumer_pkg_config       the same examples' app.cpp compiled with `pkg-config --cflags --libs aria`
#   consumer_subdirectory     add_subdirectory(aria) + a plain `all`; builds and runs the README examples
#   consumer_embedded_defaults  configure only: embedded, aria defines no tools or tests, leaves
#                             -march=native off and never looks for doctest
# The subdirectory build compiles the library again, with this build's flags, so ccache answers it.
set(consumer_src ${CMAKE_CURRENT_SOURCE_DIR}/consumer)
set(consumer_bin ${PROJECT_BINARY_DIR}/consumer)
set(consumer_prefix ${consumer_bin}/prefix)
set(consumer_common -DARIA_EXPECTED_VERSION=${PROJECT_VERSION}
                    -DARIA_VOCAB_DIR=${PROJECT_SOURCE_DIR}/third_party/gpt2-vocab
                    -DARIA_TASKS_DIR=${CMAKE_CURRENT_SOURCE_DIR}/fixtures/cls_tiny
                    -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER})
if(CCACHE_PROGRAM)
  list(APPEND consumer_common -DCMAKE_CXX_COMPILER_LAUNCHER=${CCACHE_PROGRAM})
endif()

add_test(NAME consumer_install
         COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${PROJECT_BINARY_DIR} -DPREFIX=${consumer_prefix}
                 -DVERSION=${PROJECT_VERSION} -P ${consumer_src}/install.cmake)
set_tests_properties(consumer_install PROPERTIES FIXTURES_SETUP aria_installed)

add_test(NAME consumer_find_package
         COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test ${consumer_src} ${consumer_bin}/package
                 --build-generator ${CMAKE_GENERATOR} --build-noclean
                 --build-options -DARIA_CONSUMER_MODE=package -DCMAKE_PREFIX_PATH=${consumer_prefix} ${consumer_common}
                 --test-command ${CMAKE_CTEST_COMMAND} --output-on-failure)
set_tests_properties(consumer_find_package PROPERTIES FIXTURES_REQUIRED aria_installed TIMEOUT 900)

find_program(ARIA_PKG_CONFIG NAMES pkg-config pkgconf)
if(ARIA_PKG_CONFIG)
  add_test(NAME consumer_pkg_config
           COMMAND sh -c "set -e; export PKG_CONFIG_PATH='${consumer_prefix}/${CMAKE_INSTALL_LIBDIR}/pkgconfig'
                          test \"$(${ARIA_PKG_CONFIG} --modversion aria)\" = '${PROJECT_VERSION}'
                          ${CMAKE_CXX_COMPILER} -DARIA_EXPECTED_VERSION='\"${PROJECT_VERSION}\"' -I'${consumer_src}' '${consumer_src}/app.cpp' -o '${consumer_bin}/app_pkg_config' $(${ARIA_PKG_CONFIG} --cflags --libs aria)
                          '${consumer_bin}/app_pkg_config'")
  set_tests_properties(consumer_pkg_config PROPERTIES FIXTURES_REQUIRED aria_installed TIMEOUT 600)
endif()

# The flags that decide the library's object code are passed on so that ccache has them all.
set(consumer_same_flags -DARIA_NATIVE=${ARIA_NATIVE} -DARIA_CUDA=${ARIA_CUDA} -DARIA_SANITIZE=${ARIA_SANITIZE})
if(ARIA_HAVE_CUDA)
  list(APPEND consumer_same_flags "-DCMAKE_CUDA_ARCHITECTURES=${CMAKE_CUDA_ARCHITECTURES}"
              -DCMAKE_CUDA_COMPILER=${CMAKE_CUDA_COMPILER})
endif()
add_test(NAME consumer_subdirectory
         COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test ${consumer_src} ${consumer_bin}/subdirectory
                 --build-generator ${CMAKE_GENERATOR} --build-noclean
                 --build-options -DARIA_CONSUMER_MODE=subdirectory -DARIA_SOURCE_DIR=${PROJECT_SOURCE_DIR}
                                 ${consumer_common} ${consumer_same_flags}
                 --test-command ${CMAKE_CTEST_COMMAND} --output-on-failure)
set_tests_properties(consumer_subdirectory PROPERTIES TIMEOUT 1800 RUN_SERIAL ON)

add_test(NAME consumer_embedded_defaults
         COMMAND ${CMAKE_COMMAND} -S ${consumer_src} -B ${consumer_bin}/defaults -G ${CMAKE_GENERATOR}
                 -DARIA_CONSUMER_MODE=subdirectory -DARIA_SOURCE_DIR=${PROJECT_SOURCE_DIR}
                 -DARIA_CONSUMER_CHECK_DEFAULTS=ON -DCMAKE_DISABLE_FIND_PACKAGE_doctest=ON ${consumer_common})
