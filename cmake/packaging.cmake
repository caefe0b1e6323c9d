# Debian packages, made by `make deb` (cpack -G DEB in build-deb), one per
# install component:
#   libwpool0     runtime  the shared libraries (libwpool, libwpool-thpool)
#   libwpool-dev  dev      headers, static libraries, .so links, pkg-config
#                          and CMake files, man pages
#   wpool-redis   redis    libwpool-redis and its CLI (needs libhiredis),
#                          with its own header, .so link, static library,
#                          pkg-config file and man pages, so that
#                          libwpool-dev holds no link to a library it lacks
# The package names follow the soname (SOVERSION = PROJECT_VERSION_MAJOR).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME wpool)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "wpool")
set(CPACK_PACKAGE_CONTACT "wpool maintainers <maintainers@wpool.example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Go's worker-pool pattern for C: bounded pool, channels, groups")
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
# libwpool-redis needs libwpool.so.0, which is in another of these packages:
# dpkg-shlibdeps finds it in the build tree (the dependency on libwpool0 comes
# from the component dependency below).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR})
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)

set(wpool_deb_so ${PROJECT_VERSION_MAJOR})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libwpool${wpool_deb_so})
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libwpool-dev)
set(CPACK_DEBIAN_REDIS_PACKAGE_NAME wpool-redis)
# The shared libraries' packages: a shlibs file (libwpool 0 libwpool0 (>=
# version)) and the ldconfig trigger Debian asks for.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/cmake/debian/triggers)
set(CPACK_DEBIAN_REDIS_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/cmake/debian/triggers)
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
# Debian's rules for staged files (permissions, gzipped man pages,
# copyright and changelog): cmake/deb_staging.cmake.
set(CPACK_WPOOL_DEBIAN_DIR ${PROJECT_SOURCE_DIR}/cmake/debian)
set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/cmake/deb_staging.cmake)
include(CPack)
