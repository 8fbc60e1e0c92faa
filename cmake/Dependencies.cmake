# Builds the two pinned source dependencies at configure time, from verified local tarballs:
#   mbedTLS 3.6.7 with coap-edge's configuration, then libcoap 4.3.5 on it with Debian's
#   security patches. CMake never downloads: cmake/fetch-sources.sh fills the cache first, or
#   COAP_EDGE_SOURCES_DIR names a directory that holds the tarballs (offline / Debian builds).
# Results: imported targets coap_edge::mbedtls and coap_edge::coap.

# Same default as cmake/fetch-sources.sh: ${XDG_CACHE_HOME:-~/.cache}/coap-edge/sources.
if(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
  set(_default_sources "$ENV{XDG_CACHE_HOME}/coap-edge/sources")
else()
  set(_default_sources "$ENV{HOME}/.cache/coap-edge/sources")
endif()
set(COAP_EDGE_SOURCES_DIR "${_default_sources}"
    CACHE PATH "Directory holding the pinned tarballs listed in cmake/pins.txt")
set(COAP_EDGE_DEPS_C_FLAGS "" CACHE STRING
    "Extra C flags for mbedTLS and libcoap (the sanitizer builds instrument them too)")

set(_pins_file ${CMAKE_CURRENT_LIST_DIR}/pins.txt)
file(STRINGS ${_pins_file} _pins REGEX "^[^#].*")
foreach(_line IN LISTS _pins)
  string(REGEX REPLACE "[ \t]+" ";" _f "${_line}")
  list(GET _f 0 _name)
  list(GET _f 1 _sha)
  set(_path ${COAP_EDGE_SOURCES_DIR}/${_name})
  if(NOT EXISTS ${_path})
    message(FATAL_ERROR "Missing pinned source ${_path}.\n"
      "Run `bash cmake/fetch-sources.sh` (downloads through Debian's source packages and caches), "
      "or pass -DCOAP_EDGE_SOURCES_DIR=<dir> with the files listed in cmake/pins.txt.")
  endif()
  file(SHA256 ${_path} _got)
  if(NOT _got STREQUAL _sha)
    message(FATAL_ERROR "SHA-256 mismatch for ${_path}:\n  pinned   ${_sha}\n  found    ${_got}\n"
      "Refusing to build with unreviewed sources: compare with the upstream release and Debian's "
      "changelog, then update cmake/pins.txt if the change is legitimate.")
  endif()
  if(_name MATCHES "^mbedtls_.*orig")
    set(_mbedtls_tar ${_path})
  elseif(_name MATCHES "^libcoap3_.*orig")
    set(_libcoap_tar ${_path})
  elseif(_name MATCHES "^libcoap3_.*debian")
    set(_libcoap_debian_tar ${_path})
  endif()
endforeach()

set(_deps ${CMAKE_BINARY_DIR}/_deps)
set(COAP_EDGE_DEPS_PREFIX ${_deps}/prefix)
set(_inputs ${_pins_file} ${CMAKE_CURRENT_LIST_DIR}/mbedtls/coap_edge_mbedtls_config.h
            ${CMAKE_CURRENT_LIST_DIR}/libcoap-patches.txt ${CMAKE_CURRENT_LIST_DIR}/apply-libcoap-patches.sh
            ${CMAKE_CURRENT_LIST_FILE})
file(GLOB _own_patches ${CMAKE_CURRENT_LIST_DIR}/patches/*.patch)
file(GLOB _mbedtls_patches ${CMAKE_CURRENT_LIST_DIR}/mbedtls/patches/*.patch)
list(SORT _mbedtls_patches)
list(APPEND _inputs ${_own_patches} ${_mbedtls_patches})
set(_stamp_text "${CMAKE_C_COMPILER} ${CMAKE_C_COMPILER_VERSION} ${COAP_EDGE_DEPS_C_FLAGS}")
foreach(_i IN LISTS _inputs)
  file(SHA256 ${_i} _h)
  string(APPEND _stamp_text " ${_h}")
endforeach()
string(SHA256 _stamp_hash "${_stamp_text}")
set(_stamp ${_deps}/stamp)
set(_old_stamp "")
if(EXISTS ${_stamp})
  file(READ ${_stamp} _old_stamp)
endif()

function(_deps_run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  file(APPEND ${_deps}/build.log "== ${what}\n${_out}\n")
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (see ${_deps}/build.log):\n${_out}")
  endif()
  set(_deps_last_output "${_out}" PARENT_SCOPE)
endfunction()

if(NOT _old_stamp STREQUAL _stamp_hash OR NOT EXISTS ${COAP_EDGE_DEPS_PREFIX}/lib/libcoap-3.a)
  message(STATUS "coap-edge: building pinned mbedTLS and libcoap into ${COAP_EDGE_DEPS_PREFIX}")
  file(REMOVE_RECURSE ${_deps})
  file(MAKE_DIRECTORY ${_deps}/src)
  file(WRITE ${_deps}/build.log "")
  set(_common -G "${CMAKE_GENERATOR}" -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER} "-DCMAKE_C_FLAGS=${COAP_EDGE_DEPS_C_FLAGS}"
      -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_INSTALL_PREFIX=${COAP_EDGE_DEPS_PREFIX}
      -DCMAKE_INSTALL_LIBDIR=lib)

  # mbedTLS: our configuration is appended to the default one before anything compiles.
  file(ARCHIVE_EXTRACT INPUT ${_mbedtls_tar} DESTINATION ${_deps}/src)
  file(GLOB _mbedtls_src LIST_DIRECTORIES true ${_deps}/src/mbedtls-*)
  # Our own Mbed TLS patches (cmake/mbedtls/patches/), in name order; like libcoap's, a patch
  # that no longer applies exactly fails the build.
  foreach(_p IN LISTS _mbedtls_patches)
    get_filename_component(_pn ${_p} NAME)
    _deps_run("apply ${_pn} to mbedTLS" patch -d ${_mbedtls_src} -p1 --forward --batch --fuzz=0
              --no-backup-if-mismatch -i ${_p})
    file(APPEND ${_deps}/mbedtls-patches.log "mbedtls-patches: applied ${_pn}\n")
  endforeach()
  file(COPY ${CMAKE_CURRENT_LIST_DIR}/mbedtls/coap_edge_mbedtls_config.h
       DESTINATION ${_mbedtls_src}/include/mbedtls)
  file(APPEND ${_mbedtls_src}/include/mbedtls/mbedtls_config.h
       "\n/* coap-edge: project configuration (cmake/mbedtls/) */\n#include \"mbedtls/coap_edge_mbedtls_config.h\"\n")
  _deps_run("configure mbedTLS" ${CMAKE_COMMAND} -S ${_mbedtls_src} -B ${_deps}/build/mbedtls ${_common}
            -DENABLE_TESTING=OFF -DENABLE_PROGRAMS=OFF -DUSE_SHARED_MBEDTLS_LIBRARY=OFF
            -DMBEDTLS_FATAL_WARNINGS=OFF)
  _deps_run("build mbedTLS" ${CMAKE_COMMAND} --build ${_deps}/build/mbedtls --parallel 2 --target install)

  # libcoap with Debian's security patches, then the mbedTLS backend on the library above.
  file(ARCHIVE_EXTRACT INPUT ${_libcoap_tar} DESTINATION ${_deps}/src)
  file(ARCHIVE_EXTRACT INPUT ${_libcoap_debian_tar} DESTINATION ${_deps}/src/libcoap-debian)
  file(GLOB _libcoap_src LIST_DIRECTORIES true ${_deps}/src/libcoap3-*)
  _deps_run("apply Debian's libcoap security patches" bash ${CMAKE_CURRENT_LIST_DIR}/apply-libcoap-patches.sh
            ${_libcoap_src} ${_deps}/src/libcoap-debian/debian/patches ${CMAKE_CURRENT_LIST_DIR}/libcoap-patches.txt
            ${CMAKE_CURRENT_LIST_DIR}/patches)
  file(WRITE ${_deps}/libcoap-patches.log "${_deps_last_output}")
  set(_p ${COAP_EDGE_DEPS_PREFIX})
  _deps_run("configure libcoap" ${CMAKE_COMMAND} -S ${_libcoap_src} -B ${_deps}/build/libcoap ${_common}
            -DDTLS_BACKEND=mbedtls -DENABLE_DTLS=ON -DENABLE_OSCORE=OFF -DENABLE_TCP=OFF -DENABLE_WS=OFF
            -DENABLE_DOCS=OFF -DENABLE_EXAMPLES=OFF -DENABLE_TESTS=OFF -DBUILD_SHARED_LIBS=OFF
            -DENABLE_THREAD_SAFE=OFF -DWITH_OBSERVE_PERSIST=OFF -DWITH_EPOLL=ON
            -DMBEDTLS_INCLUDE_DIRS=${_p}/include -DMBEDTLS_LIBRARY=${_p}/lib/libmbedtls.a
            -DMBEDX509_LIBRARY=${_p}/lib/libmbedx509.a -DMBEDCRYPTO_LIBRARY=${_p}/lib/libmbedcrypto.a)
  _deps_run("build libcoap" ${CMAKE_COMMAND} --build ${_deps}/build/libcoap --parallel 2 --target install)
  file(WRITE ${_stamp} "${_stamp_hash}")
endif()

# Every configure states which fixes the libcoap and Mbed TLS in this build carry.
file(STRINGS ${_deps}/libcoap-patches.log _patch_lines)
if(EXISTS ${_deps}/mbedtls-patches.log)
  file(STRINGS ${_deps}/mbedtls-patches.log _mbedtls_patch_lines)
  list(APPEND _patch_lines ${_mbedtls_patch_lines})
endif()
foreach(_l IN LISTS _patch_lines)
  message(STATUS "${_l}")
endforeach()

add_library(coap_edge_mbedcrypto STATIC IMPORTED GLOBAL)
set_target_properties(coap_edge_mbedcrypto PROPERTIES
  IMPORTED_LOCATION ${COAP_EDGE_DEPS_PREFIX}/lib/libmbedcrypto.a
  INTERFACE_INCLUDE_DIRECTORIES ${COAP_EDGE_DEPS_PREFIX}/include)
add_library(coap_edge_mbedx509 STATIC IMPORTED GLOBAL)
set_target_properties(coap_edge_mbedx509 PROPERTIES
  IMPORTED_LOCATION ${COAP_EDGE_DEPS_PREFIX}/lib/libmbedx509.a
  INTERFACE_LINK_LIBRARIES coap_edge_mbedcrypto)
add_library(coap_edge_mbedtls_ssl STATIC IMPORTED GLOBAL)
set_target_properties(coap_edge_mbedtls_ssl PROPERTIES
  IMPORTED_LOCATION ${COAP_EDGE_DEPS_PREFIX}/lib/libmbedtls.a
  INTERFACE_LINK_LIBRARIES coap_edge_mbedx509)
add_library(coap_edge::mbedtls ALIAS coap_edge_mbedtls_ssl)

add_library(coap_edge_libcoap STATIC IMPORTED GLOBAL)
set_target_properties(coap_edge_libcoap PROPERTIES
  IMPORTED_LOCATION ${COAP_EDGE_DEPS_PREFIX}/lib/libcoap-3.a
  INTERFACE_INCLUDE_DIRECTORIES ${COAP_EDGE_DEPS_PREFIX}/include
  INTERFACE_LINK_LIBRARIES coap_edge::mbedtls)
add_library(coap_edge::coap ALIAS coap_edge_libcoap)
