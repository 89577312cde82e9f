/* sluice/export.h - SL_EXPORT: what a shared object shows the world.
 *
 * libsluice is built with hidden symbols: only the functions the SDK
 * headers declare with SL_EXPORT are exported, so the core's internals are
 * not part of the ABI (tests/core/abi_exports.sh checks that the library
 * exports exactly those). Plugins are built the same way, and their one
 * entry symbol is exported with SL_EXPORT too (SL_PLUGIN_EXPORT).
 */
#ifndef SLUICE_EXPORT_H
#define SLUICE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define SL_EXPORT __attribute__((visibility("default")))
#else
#define SL_EXPORT
#endif

#endif
