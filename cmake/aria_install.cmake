# Install rules: the three static libraries, the headers under include/aria/, the CMake package
# (find_package(aria) -> aria::aria) and a pkg-config file (aria.pc). `cmake --install build --prefix P`.
include(CMakePackageConfigHelpers)
set(ARIA_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/aria)

install(TARGETS aria aria_core aria_model aria_train EXPORT ariaTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT aria_dev
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT ariaTargets NAMESPACE aria:: DESTINATION ${ARIA_CMAKE_DIR} COMPONENT aria_dev)

# Headers keep their layout under aria/: <aria/core/tensor.h>, <aria/model/gpt2.h>, ... The public entry
# points are those <aria/aria.h> includes (README, "Using aria as a library"); the rest are installed
# because those include them. Kernel implementation headers (kernels/cpu, kernels/cuda) stay private,
# except the CUDA runtime switches (TF32, autotuning) of a CUDA build.
install(FILES include/aria/aria.h ${PROJECT_BINARY_DIR}/generated/aria/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/aria COMPONENT aria_dev)
foreach(dir core model train kernels)
  install(DIRECTORY ${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/aria/${dir} COMPONENT aria_dev
          FILES_MATCHING PATTERN "*.h" PATTERN "cpu" EXCLUDE PATTERN "cuda" EXCLUDE)
endforeach()
if(ARIA_HAVE_CUDA)
  install(FILES kernels/cuda/runtime.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/aria/kernels/cuda COMPONENT aria_dev)
endif()

configure_package_config_file(cmake/ariaConfig.cmake.in ${PROJECT_BINARY_DIR}/ariaConfig.cmake
                              INSTALL_DESTINATION ${ARIA_CMAKE_DIR})
# 0.x: a minor version may change the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ariaConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ariaConfig.cmake ${PROJECT_BINARY_DIR}/ariaConfigVersion.cmake
        DESTINATION ${ARIA_CMAKE_DIR} COMPONENT aria_dev)

# pkg-config: paths relative to the .pc file (${pcfiledir}), so the package works from any prefix
# given to `cmake --install --prefix`.
file(RELATIVE_PATH ARIA_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" ARIA_PC_TO_PREFIX "${ARIA_PC_TO_PREFIX}")
set(ARIA_PC_CFLAGS "-fopenmp")
set(ARIA_PC_LIBS "-fopenmp -pthread")
if(ARIA_HAVE_CUDA)
  string(APPEND ARIA_PC_CFLAGS " -DARIA_WITH_CUDA=1")
  foreach(dir ${CUDAToolkit_INCLUDE_DIRS})
    string(APPEND ARIA_PC_CFLAGS " -I${dir}")
  endforeach()
  string(APPEND ARIA_PC_LIBS " -L${CUDAToolkit_LIBRARY_DIR} -lcublasLt -lcublas -lcudart")
endif()
configure_file(cmake/aria.pc.in ${PROJECT_BINARY_DIR}/aria.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/aria.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT aria_dev)
