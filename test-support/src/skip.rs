//! Tests that need a tool this machine may lack (a `redis-server`, a
//! browser): without it they skip loudly, and with the matching
//! `ZINX_REQUIRE_*` variable set to `1` (as `.ci/run` sets them) they fail.

use std::io::Write as _;

/// Whether `var` is set to `1`.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// A test cannot run here because `missing` is not installed. Panics when
/// `require_var` is `1`; otherwise prints a notice that the test harness
/// does not capture (straight to the process's stderr: `eprintln!` would
/// be captured and never shown for a passing test), naming what did not
/// run (`what`) and how to install the tool (`install`).
pub fn skip(require_var: &str, missing: &str, what: &str, install: &str) {
    if required(require_var) {
        panic!("{require_var}=1 but {missing} is not installed ({what})");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n=====================================================================\n\
         SKIPPED: {missing} is not installed, so {what}\n\
         did not run. Install it ({install}) or set\n\
         {require_var}=1 to make this a failure.\n\
         ====================================================================="
    );
}
