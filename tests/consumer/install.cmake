# ctest consumer_install: installs the already-built aria of BUILD_DIR into a fresh PREFIX (the library,
# headers, CMake package and pkg-config file; the CLI), then runs the installed CLI's --version, which
# must print VERSION. Usage: cmake -DBUILD_DIR=... -DPREFIX=... -DVERSION=... -P install.cmake
foreach(v BUILD_DIR PREFIX VERSION)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "install.cmake: -D${v}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${PREFIX})
# Only aria's own components: others (the Python package) may install outside the prefix.
foreach(component aria_dev aria_tools)
  execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX} --component ${component}
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cmake --install --component ${component} failed (${rc})")
  endif()
endforeach()
foreach(f include/aria/aria.h include/aria/version.h include/aria/core/tensor.h lib/cmake/aria/ariaConfig.cmake
          lib/cmake/aria/ariaConfigVersion.cmake lib/cmake/aria/ariaTargets.cmake lib/pkgconfig/aria.pc
          lib/libaria_core.a bin/aria)
  if(NOT EXISTS ${PREFIX}/${f})
    message(FATAL_ERROR "not installed: ${PREFIX}/${f}")
  endif()
endforeach()
execute_process(COMMAND ${PREFIX}/bin/aria --version OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT out MATCHES "^aria ${VERSION}[ \n]")
  message(FATAL_ERROR "installed aria --version: exit ${rc}, printed '${out}' (want 'aria ${VERSION} ...')")
endif()
message(STATUS "installed into ${PREFIX}: ${out}")
