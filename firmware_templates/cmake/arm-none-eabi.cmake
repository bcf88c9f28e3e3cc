# CMake toolchain file for arm-none-eabi-gcc (bare metal). Point ARM_TOOLCHAIN_ROOT at a toolchain's
# bin/ folder to pick one that is not on PATH.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(ARM_TOOLCHAIN_ROOT "$ENV{ARM_TOOLCHAIN_ROOT}" CACHE PATH "folder holding arm-none-eabi-gcc (empty: PATH)")
if(ARM_TOOLCHAIN_ROOT)
  set(_prefix "${ARM_TOOLCHAIN_ROOT}/arm-none-eabi-")
else()
  set(_prefix "arm-none-eabi-")
endif()
set(CMAKE_C_COMPILER "${_prefix}gcc")
set(CMAKE_CXX_COMPILER "${_prefix}g++")
set(CMAKE_ASM_COMPILER "${_prefix}gcc")
set(CMAKE_OBJCOPY "${_prefix}objcopy" CACHE FILEPATH "")
set(CMAKE_SIZE "${_prefix}size" CACHE FILEPATH "")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
