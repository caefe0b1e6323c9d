# Debian packages, made by `make deb` (cpack -G DEB in build-deb), one per
# install component:
#   libwpool0     runtime  the shared libraries (libwpool, libwpool-thpool)
#   libwpool-dev  dev      headers, static libraries, .so links, pkg-config
#                          and CMake files, man pages
#   wpool-redis   redis    libwpool-redis and its CLI (needs libhiredis)
# The package names follow the soname (SOVERSION = PROJECT_VERSION_MAJOR).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME wpool)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "wpool")
set(CPACK_PACKAGE_CONTACT "wpool maintainers <wpool@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Go's worker-pool pattern for C: bounded pool, channels, groups")
set(CPACK_PACKAGE_HOMEPAGE_URL "https://localhost/wpool")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
if(TARGET wpool_redis_shared)
  list(APPEND CPACK_COMPONENTS_ALL redis)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)

set(wpool_deb_so ${PROJECT_VERSION_MAJOR})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libwpool${wpool_deb_so})
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libwpool-dev)
set(CPACK_DEBIAN_REDIS_PACKAGE_NAME wpool-redis)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_REDIS_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_REDIS_PACKAGE_SECTION net)
set(CPACK_COMPONENT_DEV_DEPENDS runtime)
set(CPACK_COMPONENT_REDIS_DEPENDS runtime)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
  "Go's worker-pool pattern for C: shared libraries\n"
  "A fixed set of worker threads pulling tasks from a bounded queue, with\n"
  "Go-style channels and groups (errgroup, parallel-for). Also\n"
  "libwpool-thpool, C-Thread-Pool's API on wpool.")
set(CPACK_COMPONENT_DEV_DESCRIPTION
  "Go's worker-pool pattern for C: development files\n"
  "Headers (wpool.h, wpool-thpool/thpool.h), static libraries, pkg-config\n"
  "and CMake package files, and man pages (wpool(7), wp_submit(3), ...).")
set(CPACK_COMPONENT_REDIS_DESCRIPTION
  "job queue across machines on Redis Streams, run on wpool\n"
  "libwpool-redis: at-least-once delivery with backpressure across the\n"
  "network, dead letters and reconnects, and its command-line tool.")
include(CPack)
