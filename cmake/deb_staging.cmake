# Run by cpack (CPACK_PRE_BUILD_SCRIPTS) on the staged files of each Debian
# package, before they are packed: what Debian policy asks of a package and
# `cmake --install` does not do.
#   - shared libraries are 0644, not executable;
#   - man pages are gzip -9n, their alias links point at the .gz;
#   - /usr/share/doc/<package>/ holds copyright and changelog.Debian.gz.
string(TIMESTAMP WPOOL_DEB_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
foreach(comp ${CPACK_COMPONENTS_ALL})
  set(root ${CPACK_TEMPORARY_DIRECTORY}/${comp})
  if(NOT IS_DIRECTORY ${root})
    continue()
  endif()
  string(TOUPPER ${comp} COMP)
  set(pkg ${CPACK_DEBIAN_${COMP}_PACKAGE_NAME})

  file(GLOB_RECURSE libs LIST_DIRECTORIES false ${root}/*.so.*)
  foreach(f ${libs})
    if(NOT IS_SYMLINK ${f})
      file(CHMOD ${f} PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
    endif()
  endforeach()

  file(GLOB_RECURSE pages LIST_DIRECTORIES false ${root}/usr/share/man/*)
  foreach(p ${pages})
    if(IS_SYMLINK ${p})
      file(READ_SYMLINK ${p} target)
      file(REMOVE ${p})
      file(CREATE_LINK ${target}.gz ${p}.gz SYMBOLIC)
    elseif(NOT p MATCHES "\\.gz$")
      execute_process(COMMAND gzip -9nf ${p} RESULT_VARIABLE rc)
      if(NOT rc EQUAL 0)
        message(FATAL_ERROR "gzip failed on ${p}")
      endif()
    endif()
  endforeach()

  set(doc ${root}/usr/share/doc/${pkg})
  file(MAKE_DIRECTORY ${doc})
  file(COPY_FILE ${CPACK_WPOOL_DEBIAN_DIR}/copyright ${doc}/copyright)
  configure_file(${CPACK_WPOOL_DEBIAN_DIR}/changelog.in ${doc}/changelog.Debian @ONLY)
  execute_process(COMMAND gzip -9nf ${doc}/changelog.Debian RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip failed on ${doc}/changelog.Debian")
  endif()
  file(GLOB_RECURSE all LIST_DIRECTORIES false ${doc}/*)
  foreach(f ${all})
    file(CHMOD ${f} PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endforeach()
endforeach()
