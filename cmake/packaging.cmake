# Debian packages: camtunnel-gateway, camtunnel-agent, camtunnel-manager and camtunnel-agentsim,
# one per install component.
#
#   cmake --preset release && cmake --build --preset release
#   cpack --config build/release/CPackConfig.cmake -B build/packages
#   -> build/packages/camtunnel-{gateway,agent,manager,agentsim}_<version>_<arch>.deb
#
# The binaries' install() rules live beside their targets (gateway/, agent/, manager/,
# agentsim/, components of the same names); this file adds the systemd units, the example
# configuration and env files (conffiles in /etc/camtunnel), the maintainer scripts
# (deploy/debian/) and the operator documents. The load generator has no service: no unit, no
# user, no configuration, only the binary and its README.
# Version: project(camtunnel VERSION ...). Library dependencies: dpkg-shlibdeps (dpkg-dev).
# Checked by tests/ops/test_packages.py.

set(CAMTUNNEL_DEPLOY_DIR ${CMAKE_SOURCE_DIR}/deploy)

# Components that have a binary in this build (CAMTUNNEL_AGENT_ONLY builds have no gateway).
set(camtunnel_components "")
if(TARGET camtunnel-gateway)
  list(APPEND camtunnel_components gateway)
endif()
if(TARGET camtunnel-agent)
  list(APPEND camtunnel_components agent)
endif()
if(TARGET camtunnel-manager)
  list(APPEND camtunnel_components manager)
endif()
# Services: the components with a unit, a user and configuration.
set(camtunnel_services ${camtunnel_components})
if(TARGET camtunnel-agentsim)
  list(APPEND camtunnel_components agentsim)
  install(FILES ${CMAKE_SOURCE_DIR}/agentsim/README.md
          DESTINATION share/doc/camtunnel-agentsim COMPONENT agentsim)
  install(FILES ${CMAKE_SOURCE_DIR}/deploy/grafana/camtunnel-agentsim.json
          DESTINATION share/doc/camtunnel-agentsim/examples COMPONENT agentsim)
endif()

# The gateway's configuration file: a conffile next to its env file.
if(TARGET camtunnel-gateway)
  install(FILES ${CAMTUNNEL_DEPLOY_DIR}/config/gateway.toml
          DESTINATION /etc/camtunnel COMPONENT gateway)
endif()

# The manager's own guide (its flags, streamers file, admin API) beside the common documents.
if(TARGET camtunnel-manager)
  install(FILES ${CMAKE_SOURCE_DIR}/docs/manager.md
          DESTINATION share/doc/camtunnel-manager COMPONENT manager)
endif()

# Files of every service package: unit, example env file (as a conffile), documents.
foreach(component IN LISTS camtunnel_services)
  install(FILES ${CAMTUNNEL_DEPLOY_DIR}/systemd/camtunnel-${component}.service
          DESTINATION lib/systemd/system COMPONENT ${component})
  # Absolute: a Debian package's configuration lives in /etc, not under the /usr prefix.
  install(FILES ${CAMTUNNEL_DEPLOY_DIR}/env/${component}.env
          DESTINATION /etc/camtunnel COMPONENT ${component})
  install(FILES ${CMAKE_SOURCE_DIR}/docs/operations.md ${CMAKE_SOURCE_DIR}/docs/configuration.md
          DESTINATION share/doc/camtunnel-${component} COMPONENT ${component})
  set(control_dir ${CMAKE_BINARY_DIR}/cpack/${component})
  file(MAKE_DIRECTORY ${control_dir})
  if(component STREQUAL "gateway")
    file(WRITE ${control_dir}/conffiles
         "/etc/camtunnel/gateway.env\n/etc/camtunnel/gateway.toml\n")
  else()
    file(WRITE ${control_dir}/conffiles "/etc/camtunnel/${component}.env\n")
  endif()
  foreach(script postinst prerm postrm)
    file(COPY ${CAMTUNNEL_DEPLOY_DIR}/debian/${script} DESTINATION ${control_dir}
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                          WORLD_READ WORLD_EXECUTE)
  endforeach()
  string(TOUPPER ${component} upper)
  set(CPACK_DEBIAN_${upper}_PACKAGE_CONTROL_EXTRA
      ${control_dir}/conffiles ${control_dir}/postinst ${control_dir}/prerm ${control_dir}/postrm)
endforeach()

# The gateway's operator kit: kernel settings, Prometheus scrape config and alerts, dashboard.
if(TARGET camtunnel-gateway)
  install(FILES ${CAMTUNNEL_DEPLOY_DIR}/sysctl/99-camtunnel.conf
                ${CAMTUNNEL_DEPLOY_DIR}/prometheus/prometheus.yml
                ${CAMTUNNEL_DEPLOY_DIR}/prometheus/camtunnel-alerts.yml
                ${CAMTUNNEL_DEPLOY_DIR}/grafana/camtunnel-gateway.json
          DESTINATION share/doc/camtunnel-gateway/examples COMPONENT gateway)
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME camtunnel)
set(CPACK_PACKAGE_VENDOR camtunnel)
set(CPACK_PACKAGE_CONTACT "camtunnel maintainers <camtunnel@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# No CPACK_PACKAGE_DESCRIPTION_SUMMARY: CPackDeb would prepend it to each component's
# description, whose first line is already that package's summary.
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL ${camtunnel_components})
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <name>_<version>-<release>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.invalid/camtunnel")
# Modes of the maintainer scripts as Debian policy wants them (0755, conffiles 0644).
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# No shared libraries of our own to declare (no "shlibs" control file).
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)

if(CMAKE_CROSSCOMPILING)
  # dpkg-shlibdeps cannot resolve a foreign architecture's libraries unless they are installed
  # for it: state the agent's run-time dependencies instead.
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)
  set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS "libc6, libssl3")
  if(NOT CAMTUNNEL_STATIC_LIBSTDCXX)
    string(APPEND CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS ", libstdc++6, libgcc-s1")
  endif()
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
    set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE arm64)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^arm")
    set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE armhf)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(mips|mipsel)$")
    set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE mipsel)
  endif()
else()
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
endif()
# Every package creates the camtunnel system user with adduser in its postinst.
set(CPACK_DEBIAN_GATEWAY_PACKAGE_NAME camtunnel-gateway)
set(CPACK_DEBIAN_GATEWAY_PACKAGE_DEPENDS adduser)
set(CPACK_DEBIAN_GATEWAY_DESCRIPTION "camtunnel gateway (Streamer node)
Terminates the TLS control connections of camera agents and serves media servers'
RTSP, HTTP and CONNECT requests through reverse tunnels. Admin port: Prometheus
metrics, health checks and an agents API.")
set(CPACK_DEBIAN_AGENT_PACKAGE_NAME camtunnel-agent)
if(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS)
  string(APPEND CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS ", adduser")
else()
  set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS adduser)
endif()
set(CPACK_DEBIAN_AGENT_DESCRIPTION "camtunnel agent (camera side)
Dials out to a camtunnel gateway over TLS and serves reverse tunnels to the camera's
local services (RTSP, HTTP), so cameras behind NAT need no port forwarding.")
set(CPACK_DEBIAN_MANAGER_PACKAGE_NAME camtunnel-manager)
set(CPACK_DEBIAN_MANAGER_PACKAGE_DEPENDS adduser)
set(CPACK_DEBIAN_MANAGER_DESCRIPTION "camtunnel manager (activation and managing server)
Activates camera agents (per-device factory secrets, operator claim tokens), keeps
their manager links, assigns them to gateways by health and load, moves them off a
draining or dead gateway, and pushes revocations and relocations to gateways.")
set(CPACK_DEBIAN_AGENTSIM_PACKAGE_NAME camtunnel-agentsim)
set(CPACK_DEBIAN_AGENTSIM_DESCRIPTION "camtunnel agentsim (load generator)
Simulates fleets of camtunnel agents and their cameras in one process and drives
verified RTSP and snapshot load through a gateway. For test and load boxes, not
for production nodes.")
set(CPACK_COMPONENT_AGENTSIM_DISPLAY_NAME "camtunnel agentsim")
set(CPACK_COMPONENT_GATEWAY_DISPLAY_NAME "camtunnel gateway")
set(CPACK_COMPONENT_AGENT_DISPLAY_NAME "camtunnel agent")
set(CPACK_COMPONENT_MANAGER_DISPLAY_NAME "camtunnel manager")

include(CPack)
