//! Two crates that each define a handler for the same literal msg_id cannot
//! be linked into one binary: every `#[handler(msg_id = N, ..)]` defines the
//! exported symbol `zinx_cluster_handler_for_msg_id_N`, and the linker
//! refuses a symbol defined twice. (Within one crate rustc itself refuses it:
//! see `ui/fail/duplicate_msg_id.rs`.)
//!
//! This builds a small workspace of three crates (`a`, `b` and an `app`
//! naming both) with a nested `cargo` under the target directory. The first
//! run compiles zinx-cluster's dependencies once; later runs reuse them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `<target>/tests/zinx-link-duplicate`, next to trybuild's projects.
fn project_dir() -> PathBuf {
    // This test runs as `<target>/<profile>/deps/link_duplicate-<hash>`.
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary lives under <target>/<profile>/deps");
    target.join("tests").join("zinx-link-duplicate")
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a file in a directory")).expect("create dir");
    // Rewrite only on change, so that cargo's fingerprints stay valid.
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).expect("write project file");
    }
}

/// The workspace, with crate `a` defining `msg_id_a` and `b` `msg_id_b`.
fn project(dir: &Path, msg_id_a: u32, msg_id_b: u32) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace");
    let zinx = workspace.join("zinx-cluster");
    let zinx = zinx.display();
    write(
        &dir.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"a\", \"b\", \"app\"]\n",
    );
    // The workspace's lock file: the same versions, nothing to resolve.
    if !dir.join("Cargo.lock").exists() {
        std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy lock");
    }
    for (name, msg_id) in [("a", msg_id_a), ("b", msg_id_b)] {
        write(
            &dir.join(name).join("Cargo.toml"),
            &format!(
                "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
                 publish = false\n\n[dependencies]\nzinx-cluster = {{ path = \"{zinx}\" }}\n"
            ),
        );
        write(
            &dir.join(name).join("src/lib.rs"),
            &format!(
                "use zinx_cluster::prelude::*;\n\n\
                 #[handler(msg_id = {msg_id}, group = \"g\")]\n\
                 async fn from_{name}(_ctx: &mut Ctx) {{}}\n"
            ),
        );
    }
    write(
        &dir.join("app/Cargo.toml"),
        &format!(
            "[package]\nname = \"app\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\na = {{ path = \"../a\" }}\nb = {{ path = \"../b\" }}\n\
             zinx-cluster = {{ path = \"{zinx}\" }}\n"
        ),
    );
    write(
        &dir.join("app/src/main.rs"),
        "// Naming the crates is what links them (and their handlers) in.\n\
         use a as _;\nuse b as _;\n\n\
         fn main() {\n\
         \x20   let mut ids: Vec<u32> = zinx_cluster::registry::registered().map(|r| r.msg_id).collect();\n\
         \x20   ids.sort();\n\
         \x20   println!(\"{ids:?}\");\n\
         }\n",
    );
}

fn cargo(dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
        .args(args)
        .arg("--offline")
        .arg("--target-dir")
        .arg(dir.join("target"))
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo")
}

#[test]
fn same_literal_msg_id_in_two_crates_fails_to_link() {
    let dir = project_dir();

    // Control: distinct msg_ids link, and both crates' handlers are there.
    project(&dir, 4_000_000_101, 4_000_000_102);
    let out = cargo(&dir, &["run", "--quiet", "-p", "app"]);
    assert!(
        out.status.success(),
        "distinct msg_ids must build and run:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[4000000101, 4000000102]"
    );

    // The same msg_id in both crates: the link fails and names the msg_id.
    project(&dir, 4_000_000_101, 4_000_000_101);
    let out = cargo(&dir, &["build", "-p", "app"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a duplicate msg_id must not link");
    assert!(
        stderr.contains("zinx_cluster_handler_for_msg_id_4000000101"),
        "the linker error names the msg_id's symbol:\n{stderr}"
    );
}
