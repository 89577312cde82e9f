# The core's source files: compiled once into the object library sluice_core
# (core/CMakeLists.txt), from which libsluice.so, the sluice executable and
# the tests are linked. A core file is added, renamed or removed here only.
set(SLUICE_CORE_SOURCES
  arena.c
  ctx.c
  document.c
  call.c ops.c
  options.c config.c registry.c instance.c
  query.c
  loop.c
  pool.c
  batcher.c
  walk.c
  media.c
  runtime.c
  pipeline.c plan.c job.c stage.c executor.c pages.c batches.c summaries.c threads.c
  report.c
  throttle.c
  plugin_check.c
  wire.c workers.c worker.c worker_main.c sandbox.c
  io.c http.c http_verdict.c remote.c
  source.c
  serve.c
  httpd.c metrics.c status_page.c
  failures.c dryrun.c probe.c
  store.c
  guard.c
  shared_limits.c
  queue.c
)
