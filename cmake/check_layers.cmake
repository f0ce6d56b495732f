# Fails when a library includes a header of a library it may not build on.
#
#   cmake -DROOT=<source dir> -DRULES="job:|models:job|..." [-DSTAMP=<file>] -P check_layers.cmake
#
# RULES ("|"-separated) lists each checked folder with the folders it may include besides itself. Each
# library puts the repository root on its include path (so that every include names its
# folder: "job/config.h"); this check is what keeps that path from letting a lower layer
# reach a higher one. It runs as part of the build (target daenr_layers), so a wrong include
# fails `cmake --build` with one line per offence: file:line, the include, and what the
# folder may include.
cmake_minimum_required(VERSION 3.25)
if(NOT ROOT OR NOT DEFINED RULES)
  message(FATAL_ERROR "check_layers.cmake: ROOT and RULES are required")
endif()

set(_bad 0)
string(REPLACE "|" ";" RULES "${RULES}")
foreach(_rule IN LISTS RULES)
  string(REPLACE ":" ";" _parts "${_rule}")
  list(GET _parts 0 _folder)
  set(_allowed "${_folder}")
  list(LENGTH _parts _n)
  if(_n GREATER 1)
    list(GET _parts 1 _deps)
    string(REPLACE "," ";" _deps "${_deps}")
    list(APPEND _allowed ${_deps})
  endif()
  file(GLOB _files "${ROOT}/${_folder}/*.h" "${ROOT}/${_folder}/*.cpp")
  foreach(_file IN LISTS _files)
    file(STRINGS "${_file}" _lines)
    set(_line_no 0)
    foreach(_line IN LISTS _lines)
      math(EXPR _line_no "${_line_no} + 1")
      if(_line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([A-Za-z0-9_]+)/([^\"]+)\"")
        set(_target "${CMAKE_MATCH_1}")
        set(_header "${CMAKE_MATCH_1}/${CMAKE_MATCH_2}")
        if(NOT _target IN_LIST _allowed)
          file(RELATIVE_PATH _rel "${ROOT}" "${_file}")
          list(JOIN _allowed ", " _may)
          message(NOTICE "${_rel}:${_line_no}: error: includes \"${_header}\", but ${_folder}/ may "
                             "include only ${_may} (layers: cmake/check_layers.cmake, "
                             "CMakeLists.txt DAENR_LAYERS)")
          set(_bad 1)
        endif()
      endif()
    endforeach()
  endforeach()
endforeach()
if(_bad)
  message(FATAL_ERROR "a library includes a header above its layer")
endif()
if(STAMP)
  file(TOUCH "${STAMP}")
endif()
