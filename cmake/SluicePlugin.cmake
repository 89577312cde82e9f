# sluice_add_plugin(NAME SOURCES...): a plugin module named NAME.so, linked
# against the SDK with --no-undefined so a missing symbol fails at build time,
# put where the loader finds it (plugins/ next to the executable) and
# installed into lib/sluice/plugins. Installed with the SDK, so a third-party
# plugin uses the same function after find_package(sluice).
function(sluice_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE sluice::sdk)
  set_target_properties(${name} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden)
  target_link_options(${name} PRIVATE -Wl,--no-undefined)
  if(DEFINED SLUICE_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${SLUICE_PLUGIN_OUTPUT_DIR})
  endif()
  if(DEFINED SLUICE_PLUGIN_INSTALL_DIR)
    install(TARGETS ${name} LIBRARY DESTINATION ${SLUICE_PLUGIN_INSTALL_DIR})
  endif()
endfunction()
