/* The sanitizers' settings for every program of the sanitizer build
 * (tests/sanitize/run.sh links this file into each executable).
 *
 * Why compiled in rather than ASAN_OPTIONS: posternd starts its delivery
 * agents with an environment of five variables (delivery/agent_spawn.cpp),
 * and filters and table programs are started by it too, so an option given
 * in the test's environment never reaches them. Compiled in, every process
 * the suite starts writes its report to POSTERN_SANITIZE_LOG.PID, where the
 * script finds it whatever became of the process's stderr, and the run
 * fails on it. An option in the environment still overrides these.
 *
 * - halt_on_error: the first report ends the process (UBSan too: the build
 *   has -fno-sanitize-recover=undefined), so no test passes past one;
 * - detect_leaks: LeakSanitizer at exit, on in every process;
 * - print_stacktrace: UBSan's reports say where they were reached from. */

#if !defined(POSTERN_SANITIZE_DIR) || !defined(POSTERN_SANITIZE_LOG)
#error "POSTERN_SANITIZE_DIR and POSTERN_SANITIZE_LOG must name the reports' folder and path prefix"
#endif

const char* __asan_default_options(void);
const char* __ubsan_default_options(void);
const char* __lsan_default_options(void);

const char* __asan_default_options(void) {
    return "log_path=" POSTERN_SANITIZE_LOG ":halt_on_error=1:detect_leaks=1:symbolize=1";
}

const char* __ubsan_default_options(void) {
    return "log_path=" POSTERN_SANITIZE_LOG ":halt_on_error=1:print_stacktrace=1:symbolize=1";
}

const char* __lsan_default_options(void) { return "log_path=" POSTERN_SANITIZE_LOG ":print_suppressions=0"; }

/* Leaks that are not ours, each with why:
 * - libdb-5.3 (Berkeley DB, tables/db): opening a corrupt file leaks inside
 *   the library even though the handle is closed (dbfile.cpp does);
 *   libdb has no frame pointers, so its stacks end in it and name nothing
 *   of ours anyway. */
const char* __lsan_default_suppressions(void);
const char* __lsan_default_suppressions(void) { return "leak:libdb-5.3.so\n"; }

/* The reports' folder, for the daemon's confinement (daemon/sandbox.cpp):
 * Landlock would keep the serving process from writing its report there. */
const char* postern_sanitize_report_dir(void);
const char* postern_sanitize_report_dir(void) { return POSTERN_SANITIZE_DIR; }
