# torch.cmake - what the libtorch plugins (layout-torch, embed-torch) and
# their tests' model makers share: the SLUICE_TORCH switch, finding libtorch
# and one way to build against it.
#
# By default they build against the system's libtorch (Debian: libtorch-dev,
# CPU only; its TorchConfig.cmake is in /usr/lib/<triplet>/cmake/Torch). For
# a CUDA build, point SLUICE_TORCH_DIR at an unpacked libtorch from
# pytorch.org (the folder holding share/cmake/Torch, or that folder itself),
# or set Torch_DIR:
#   cmake -B build -DSLUICE_TORCH_DIR=/opt/libtorch
# SLUICE_TORCH=OFF leaves the plugins (and their tests) out of the build.
include_guard(GLOBAL)
option(SLUICE_TORCH "Build the libtorch plugins (needs libtorch-dev or SLUICE_TORCH_DIR)" ON)
set(SLUICE_TORCH_DIR "" CACHE PATH "A libtorch to build against instead of the system's (e.g. a CUDA build)")

# sluice_torch_folder(): finds libtorch for the calling folder (its imported
# target `torch` is per folder; TORCH_INSTALL_PREFIX is set there) and keeps
# -Wstrict-prototypes (from the top level, meaningless to C++, and g++ says
# so on every file) for the folder's C only. A macro: it sets the caller's
# variables.
macro(sluice_torch_folder)
  if(SLUICE_TORCH_DIR)
    if(EXISTS ${SLUICE_TORCH_DIR}/share/cmake/Torch/TorchConfig.cmake)
      set(Torch_DIR ${SLUICE_TORCH_DIR}/share/cmake/Torch)
    else()
      set(Torch_DIR ${SLUICE_TORCH_DIR})
    endif()
  endif()
  find_package(Torch REQUIRED)
  get_directory_property(sluice_opts COMPILE_OPTIONS)
  list(REMOVE_ITEM sluice_opts -Wstrict-prototypes)
  list(APPEND sluice_opts $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes>)
  set_directory_properties(PROPERTIES COMPILE_OPTIONS "${sluice_opts}")
endmacro()

# C++17, and libtorch found where it was found at build time (a libtorch
# outside the system's folders).
function(sluice_torch_properties target)
  set_target_properties(${target} PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF
                        BUILD_RPATH "${TORCH_INSTALL_PREFIX}/lib" ${ARGN})
endfunction()

# sluice_add_torch_plugin(NAME SOURCES...): a plugin module over libtorch
# (call sluice_torch_folder() first), with the torch plugins' common glue
# (torch_plugin.h: the device and threads options, the thread count, the
# model loading and the exception guard of torch_guard.hpp). torch's
# include folders come in as SYSTEM (an imported target), so its headers do
# not trip our warnings-as-errors.
function(sluice_add_torch_plugin name)
  set(common ${CMAKE_CURRENT_FUNCTION_LIST_DIR})
  sluice_add_plugin(${name} ${ARGN} ${common}/torch_plugin.c ${common}/torch_plugin.cpp)
  target_include_directories(${name} PRIVATE ${common})
  target_link_libraries(${name} PRIVATE torch Threads::Threads m)
  sluice_torch_properties(${name} CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
                          INSTALL_RPATH_USE_LINK_PATH ON)
endfunction()

# sluice_add_torch_program(NAME SOURCE): a test's model maker (writes
# TorchScript models at test time) into the build's tests/ folder.
function(sluice_add_torch_program name source)
  add_executable(${name} ${source})
  target_link_libraries(${name} PRIVATE torch)
  sluice_torch_properties(${name} RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
endfunction()
