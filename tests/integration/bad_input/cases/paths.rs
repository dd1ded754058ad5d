//! The bad-input cases about paths: seeding and `vm.mount` reaching outside the worktree.

use super::{Case, UP, toml, write};

/// Seed entries naming paths outside the worktree or into `.git`.
pub(super) fn seed_paths() -> Vec<Case> {
    vec![
        case!(
            "seed absolute",
            |e, w| toml(
                e,
                w,
                &format!("{UP}[provision]\nseed = [\"/etc/passwd\"]\n")
            ),
            &["seed"],
            1,
            "seed path `/etc/passwd` is absolute"
        ),
        case!(
            "seed dotdot",
            |e, w| toml(e, w, &format!("{UP}[provision]\nseed = [\"../secrets\"]\n")),
            &["seed"],
            1,
            "uses `..` to leave the repository"
        ),
        case!(
            "seed into .git",
            |e, w| toml(
                e,
                w,
                &format!("{UP}[provision]\nseed = [\".git/config\"]\n")
            ),
            &["seed"],
            1,
            "points into .git"
        ),
        case!(
            "seed symlink escape",
            |e, w| {
                let main = e.home.join("src/proj");
                std::os::unix::fs::symlink("/etc", main.join("etclink")).unwrap();
                e.write(&main.join(".git/info/exclude"), "etclink\n");
                toml(
                    e,
                    w,
                    &format!("{UP}[provision]\nseed = [\"etclink/hostname\"]\n"),
                )
            },
            &["seed"],
            0,
            "seed etclink/hostname skipped: it goes through etclink, a symlink leading outside the main checkout (to /etc)"
        ),
    ]
}

/// Seeding through symlinks that lead out of the checkouts.
pub(super) fn seed_symlinks() -> Vec<Case> {
    vec![
        case!(
            "seed through a tracked symlink to outside",
            |e, w| {
                // The worktree's conf/sub leads out; main's ignored conf/sub/key must not follow.
                let main = e.home.join("src/proj");
                e.write(&main.join(".git/info/exclude"), "conf/\n");
                e.write(&main.join("conf/sub/key"), "SECRET\n");
                std::fs::create_dir_all(e.home.join("outside")).unwrap();
                std::fs::create_dir_all(w.join("conf")).unwrap();
                std::os::unix::fs::symlink(e.home.join("outside"), w.join("conf/sub")).unwrap();
                write(e, w, ".worktreeinclude", "conf/\n")
            },
            &["seed"],
            0,
            "seed conf: skipped conf/sub: conf/sub is a symlink in this worktree"
        ),
        case!(
            "seed an ignored symlink to /etc matched by /**",
            |e, w| {
                let main = e.home.join("src/proj");
                std::os::unix::fs::symlink("/etc", main.join("etclink")).unwrap();
                e.write(&main.join(".git/info/exclude"), "etclink\n");
                write(e, w, ".worktreeinclude", "/**\n")
            },
            &["seed"],
            0,
            "seed etclink skipped: it is a symlink leading outside the repository (to /etc)"
        ),
        case!(
            "seed into a worktree dir symlinked outside",
            |e, w| {
                let main = e.home.join("src/proj");
                e.write(&main.join(".git/info/exclude"), "secrets/\n");
                e.write(&main.join("secrets/a.key"), "A\n");
                std::fs::create_dir_all(e.home.join("outside")).unwrap();
                std::os::unix::fs::symlink(e.home.join("outside"), w.join("secrets")).unwrap();
                toml(
                    e,
                    w,
                    &format!("{UP}[provision]\nseed = [\"secrets/a.key\"]\n"),
                )
            },
            &["seed"],
            0,
            "seed secrets/a.key skipped: secrets is a symlink in this worktree"
        ),
        case!(
            "seed from a main dir symlinked outside",
            |e, w| {
                let main = e.home.join("src/proj");
                e.write(&e.home.join("vault/key"), "K\n");
                std::os::unix::fs::symlink(e.home.join("vault"), main.join("vault")).unwrap();
                e.write(&main.join(".git/info/exclude"), "vault\n");
                toml(
                    e,
                    w,
                    &format!("{UP}[provision]\nseed = [\"vault/key\", \"vault\"]\n"),
                )
            },
            &["seed"],
            0,
            "seed vault/key skipped: it goes through vault, a symlink leading outside the main checkout"
        ),
    ]
}

/// `vm.mount` exposing more than the worktree, or committed to do so.
pub(super) fn mount() -> Vec<Case> {
    vec![
        case!(
            "outside vm.mount",
            |e, w| {
                toml(e, w, UP);
                write(e, w, "vmoat.local.toml", "[vm]\nmount = \"/usr\"\n")
            },
            &["up"],
            1,
            "is outside vm.mount (VM_MOUNT) /usr"
        ),
        case!(
            "committed vm.mount /",
            |e, w| toml(e, w, &format!("{UP}[vm]\nmount = \"/\"\n")),
            &["up"],
            1,
            "vmoat.toml: `vm.mount` is `/`, outside your home"
        ),
        case!(
            "vm.mount / in a committed vmoat.local.toml",
            |e, w| {
                toml(e, w, UP);
                write(e, w, "vmoat.local.toml", "[vm]\nmount = \"/\"\n");
                e.git(w, &["add", "-f", "vmoat.toml", "vmoat.local.toml"]);
                e.git(w, &["commit", "-q", "-m", "local config"]);
                w.to_path_buf()
            },
            &["up"],
            1,
            "vmoat.local.toml: `vm.mount` is `/`, outside your home"
        ),
        case!(
            "committed vm.mount outside home",
            |e, w| toml(e, w, &format!("{UP}[vm]\nmount = \"/usr\"\n")),
            &["provision"],
            1,
            "set it in your own gitignored vmoat.local.toml"
        ),
        case!(
            "committed vm.mount not holding the worktree",
            |e, w| {
                std::fs::create_dir_all(e.home.join("elsewhere")).unwrap();
                toml(e, w, &format!("{UP}[vm]\nmount = \"~/elsewhere\"\n"))
            },
            &["up"],
            1,
            "is outside vm.mount: a committed config may only mount a dir that holds the worktree"
        ),
    ]
}

/// `vm.mount` set in a legacy config, relative, or with a space.
pub(super) fn mount_spelling() -> Vec<Case> {
    vec![
        case!(
            "legacy committed VM_MOUNT /etc",
            |e, w| {
                write(
                    e,
                    w,
                    "vmoat.conf",
                    "VM_BACKEND=colima\nCMD_UP=true\nVM_MOUNT=/etc\n",
                );
                // Trusts the file, then refuses to approve the mount.
                assert_eq!(e.vmoat(w, &["trust"]).code, 1);
                w.to_path_buf()
            },
            &["up"],
            1,
            "vmoat.conf: `vm.mount` is `/etc`"
        ),
        case!(
            "vm.mount relative",
            |e, w| toml(e, w, &format!("{UP}[vm]\nmount = \"rel\"\n")),
            &["up"],
            1,
            "it must be an absolute path"
        ),
        case!(
            "vm.mount with a space",
            |e, w| {
                std::fs::create_dir_all(e.home.join("my src")).unwrap();
                toml(e, w, &format!("{UP}[vm]\nmount = \"/\"\n"))
                    .join("../../..")
                    .canonicalize()
                    .ok();
                let wt = e.home.join("my src/feat");
                e.git(
                    &e.home.join("src/proj"),
                    &[
                        "worktree",
                        "add",
                        "-q",
                        "-b",
                        "spaced",
                        wt.to_str().unwrap(),
                    ],
                );
                e.write(
                    &wt.join("vmoat.toml"),
                    &format!(
                        "{UP}[vm]\nmount = \"{}\"\n",
                        e.home.join("my src").display()
                    ),
                );
                wt
            },
            &["up"],
            1,
            "its path has a space"
        ),
    ]
}
