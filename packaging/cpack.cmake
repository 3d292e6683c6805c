# Installation layout and the .deb (`make package`, or `cpack -G DEB` in a
# build directory). Included from the top-level CMakeLists.txt, after the
# gossyncd and gossync targets exist.
#
# The package installs:
#   /usr/bin/gossyncd, /usr/bin/gossync
#   /lib/systemd/system/gossync.service
#   /etc/gossync/gossync.toml                      (conffile)
#   /usr/share/man/man8/gossyncd.8.gz, man1/gossync.1.gz
#   /usr/share/doc/gossync/{copyright,changelog.Debian.gz,config.md.gz,
#                           operations.md.gz,cli.md.gz}
#   /usr/share/lintian/overrides/gossync
# and its maintainer scripts create the gossync user and its directories
# (packaging/debian/postinst) and clean up on purge (postrm).

set(GOSSYNC_PKG_DIR ${CMAKE_CURRENT_LIST_DIR})
set(GOSSYNC_PKG_OUT ${CMAKE_BINARY_DIR}/packaging)
# Debian revision of the package; bump for a packaging-only change.
set(GOSSYNC_DEB_REVISION 1)
set(GOSSYNC_DEB_VERSION ${PROJECT_VERSION}-${GOSSYNC_DEB_REVISION})

# Man pages and Debian docs: version substituted, gzip -9n (no name or
# timestamp in the header, so the package is reproducible).
set(GOSSYNC_VERSION ${PROJECT_VERSION})
set(gossync_gz_files)
function(gossync_gzip_configured src dst_name)
  configure_file(${src} ${GOSSYNC_PKG_OUT}/${dst_name} @ONLY)
  add_custom_command(
    OUTPUT ${GOSSYNC_PKG_OUT}/${dst_name}.gz
    COMMAND gzip -9nc ${GOSSYNC_PKG_OUT}/${dst_name} > ${GOSSYNC_PKG_OUT}/${dst_name}.gz
    DEPENDS ${GOSSYNC_PKG_OUT}/${dst_name} ${src}
    VERBATIM)
  set(gossync_gz_files ${gossync_gz_files} ${GOSSYNC_PKG_OUT}/${dst_name}.gz PARENT_SCOPE)
endfunction()
gossync_gzip_configured(${CMAKE_SOURCE_DIR}/docs/man/gossyncd.8 gossyncd.8)
gossync_gzip_configured(${CMAKE_SOURCE_DIR}/docs/man/gossync.1 gossync.1)
gossync_gzip_configured(${GOSSYNC_PKG_DIR}/debian/changelog.in changelog.Debian)
gossync_gzip_configured(${CMAKE_SOURCE_DIR}/docs/config.md config.md)
gossync_gzip_configured(${CMAKE_SOURCE_DIR}/docs/operations.md operations.md)
gossync_gzip_configured(${CMAKE_SOURCE_DIR}/docs/cli.md cli.md)
# Part of `all`, so a plain build leaves them ready for install and cpack.
add_custom_target(gossync_docs ALL DEPENDS ${gossync_gz_files})

install(FILES ${GOSSYNC_PKG_OUT}/gossyncd.8.gz DESTINATION share/man/man8)
install(FILES ${GOSSYNC_PKG_OUT}/gossync.1.gz DESTINATION share/man/man1)
install(FILES ${GOSSYNC_PKG_DIR}/debian/copyright
              ${GOSSYNC_PKG_OUT}/changelog.Debian.gz
              ${GOSSYNC_PKG_OUT}/config.md.gz
              ${GOSSYNC_PKG_OUT}/operations.md.gz
              ${GOSSYNC_PKG_OUT}/cli.md.gz
        DESTINATION share/doc/gossync)
install(FILES ${GOSSYNC_PKG_DIR}/debian/lintian-overrides DESTINATION share/lintian/overrides
        RENAME gossync)
# Absolute: outside the /usr prefix on Debian.
install(FILES ${CMAKE_SOURCE_DIR}/systemd/gossync.service DESTINATION /lib/systemd/system)
install(FILES ${GOSSYNC_PKG_DIR}/gossync.toml DESTINATION /etc/gossync)

# Maintainer scripts with the mode dpkg wants.
foreach(script postinst prerm postrm)
  file(COPY ${GOSSYNC_PKG_DIR}/debian/${script} DESTINATION ${GOSSYNC_PKG_OUT}/control
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                        WORLD_READ WORLD_EXECUTE)
endforeach()
file(COPY ${GOSSYNC_PKG_DIR}/debian/conffiles DESTINATION ${GOSSYNC_PKG_OUT}/control
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME gossync)
set(CPACK_PACKAGE_VENDOR "gossync")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "gossync maintainers <maintainers@users.noreply.r-seed-2f2f524e.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "masterless file-sync agent for server fleets")
set(CPACK_PACKAGE_DESCRIPTION
    "gossync keeps one directory identical on every server of a fleet, with no
master. The gossyncd agent keeps a Merkle tree over the directory, gossips its
root digest to random peers over UDP sealed with AES-256-GCM, and repairs
exactly the subtrees that differ over mutual TLS 1.3. Concurrent edits are
kept as conflict copies, never lost.
.
This package ships the agent (run as the systemd service gossync), the
gossync command-line tool for status, key and certificate set-up, a default
configuration in /etc/gossync and the manual pages.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES TRUE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${GOSSYNC_DEB_REVISION})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Added to what dpkg-shlibdeps computes: postinst creates the user.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${GOSSYNC_PKG_OUT}/control/conffiles
    ${GOSSYNC_PKG_OUT}/control/postinst
    ${GOSSYNC_PKG_OUT}/control/prerm
    ${GOSSYNC_PKG_OUT}/control/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
# Directories the package does not own (/, /etc, /lib, /usr, ...) are not
# listed as its own.
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
include(CPack)
