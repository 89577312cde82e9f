/* sanitizer_options.c - linked into every executable of a sanitized build
 * (SLUICE_SANITIZE: sluice and the tests, by sluice_link_core) and nowhere
 * else: the AddressSanitizer options they start with. ASAN_OPTIONS in the
 * environment still adds to them or overrides them.
 *
 * intercept_tls_get_addr=0: up to GCC 13 and LLVM 16 the sanitizer runtime's
 * __tls_get_addr interceptor takes a dynamic TLS block whose address is 16
 * past a page boundary for one with a glibc 2.19 header, and reads the two
 * words before it as the block's start and size. glibc has had no such
 * header since 2.25, so those words are whatever lies there, and
 * LeakSanitizer's tracer, scanning that "block" at exit, dies on an unmapped
 * page ("Tracer caught signal 11"). Dynamic TLS is what a dlopen'd library
 * with thread-local variables gets: tesseract's (ocr-tesseract), whose
 * blocks on the thread that ran it land on that offset in some builds.
 * Without the interceptor, LeakSanitizer still finds those blocks through
 * the thread's DTV (static TLS, which it scans), so no leak goes unseen and
 * none is invented.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "intercept_tls_get_addr=0"; }
