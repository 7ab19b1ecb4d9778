# libgleam_ops (shared: the CPU kernels + the gleam:: op schemas and CPU kernels) and gleam-infer,
# built against the libtorch of the installed torch package. Included by CMakeLists.txt when
# GLEAM_BUILD_INFER is ON.
set(GLEAM_PYTHON "" CACHE FILEPATH "Python whose torch provides libtorch (default: the first Python3 found)")
if(NOT GLEAM_PYTHON)
  find_package(Python3 COMPONENTS Interpreter REQUIRED)
  set(GLEAM_PYTHON "${Python3_EXECUTABLE}" CACHE FILEPATH "" FORCE)
endif()
execute_process(COMMAND "${GLEAM_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                OUTPUT_VARIABLE _gleam_torch_prefix RESULT_VARIABLE _gleam_torch_rc ERROR_VARIABLE _gleam_torch_err
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _gleam_torch_rc EQUAL 0)
  message(FATAL_ERROR "GLEAM_BUILD_INFER needs torch: '${GLEAM_PYTHON} -c \"import torch\"' failed:\n${_gleam_torch_err}"
                      "Activate the venv that has torch or pass -DGLEAM_PYTHON=/path/to/python.")
endif()
list(APPEND CMAKE_PREFIX_PATH "${_gleam_torch_prefix}")
find_package(Torch REQUIRED)
enable_language(C)  # FindHDF5 checks the C library with a C compiler
find_package(HDF5 REQUIRED COMPONENTS C)
message(STATUS "gleam: gleam-infer with libtorch from ${_gleam_torch_prefix}, HDF5 ${HDF5_VERSION}")

# CUDA op kernels stay in the Python extension for now: libgleam_ops registers the CPU ones.
file(GLOB GLEAM_OP_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/csrc/ops/*.cpp ${CMAKE_SOURCE_DIR}/csrc/ops/cpu/*.cpp)
add_library(gleam_ops SHARED ${GLEAM_OP_SOURCES})
target_include_directories(gleam_ops PRIVATE ${CMAKE_SOURCE_DIR}/csrc)
target_compile_options(gleam_ops PRIVATE ${TORCH_CXX_FLAGS})
target_link_libraries(gleam_ops PRIVATE gleam_kernels ${TORCH_LIBRARIES})

add_executable(gleam-infer ${CMAKE_SOURCE_DIR}/csrc/infer/gleam_infer.cpp ${CMAKE_SOURCE_DIR}/csrc/infer/h5io.cpp
               ${CMAKE_SOURCE_DIR}/csrc/infer/metadata.cpp)
target_include_directories(gleam-infer PRIVATE ${CMAKE_SOURCE_DIR}/csrc ${HDF5_INCLUDE_DIRS})
target_compile_options(gleam-infer PRIVATE ${TORCH_CXX_FLAGS} -Wall)
# No link to gleam_ops: it is loaded at run time (--ops-lib), so a missing library is a clear error.
target_link_libraries(gleam-infer PRIVATE ${TORCH_LIBRARIES} ${HDF5_C_LIBRARIES} ${CMAKE_DL_LIBS})
