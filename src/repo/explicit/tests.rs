//! Discovery with `GIT_DIR`, `GIT_WORK_TREE` and `GIT_COMMON_DIR`, compared case by case with
//! what `git rev-parse` says for the same directory and environment.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::Worktree;
use super::super::discover::{GitEnv, discover_in};

/// Variables of the test process that must not reach git (the cases set their own).
const CLEARED: [&str; 6] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_CEILING_DIRECTORIES",
    "GIT_INDEX_FILE",
];

struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
}

impl Fixture {
    fn git_cmd(&self, dir: &Path) -> Command {
        let mut c = Command::new("git");
        c.current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_SYSTEM", "/dev/null")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", &self.base);
        for v in CLEARED {
            c.env_remove(v);
        }
        c
    }

    fn git(&self, dir: &str, args: &[&str]) {
        let ok = self
            .git_cmd(&self.base.join(dir))
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?} in {dir}");
    }

    fn path(&self, rel: &str) -> String {
        self.base.join(rel).to_str().unwrap().to_string()
    }

    /// git's top level, git dir and common dir (real paths); None when git refuses.
    fn git_says(&self, cwd: &str, vars: &[(&str, String)]) -> Option<[PathBuf; 3]> {
        let cwd = self.base.join(cwd);
        let out = self
            .git_cmd(&cwd)
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .args([
                "rev-parse",
                "--show-toplevel",
                "--git-dir",
                "--git-common-dir",
            ])
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8(out.stdout).unwrap();
        let real = |l: &str| cwd.join(l).canonicalize().unwrap_or_else(|_| cwd.join(l));
        let p: Vec<PathBuf> = text.lines().map(real).collect();
        Some([p[0].clone(), p[1].clone(), p[2].clone()])
    }

    fn ours(&self, cwd: &str, vars: &[(&str, String)]) -> anyhow::Result<Worktree> {
        let mut env = GitEnv::default();
        for (k, v) in vars {
            let v = Some(v.into());
            match *k {
                "GIT_DIR" => env.git_dir = v,
                "GIT_WORK_TREE" => env.work_tree = v,
                "GIT_COMMON_DIR" => env.common_dir = v,
                _ => panic!("{k}"),
            }
        }
        discover_in(&self.base.join(cwd), &env)
    }

    /// git-vmoat resolves what git resolves: the same root, common dir, and git dir (as the
    /// worktree id: the main one's git dir is the common dir).
    fn agree(&self, cwd: &str, vars: &[(&str, String)]) -> Worktree {
        let [top, git_dir, common] = self
            .git_says(cwd, vars)
            .unwrap_or_else(|| panic!("git refused {vars:?} in {cwd}"));
        let wt = self
            .ours(cwd, vars)
            .unwrap_or_else(|e| panic!("{e:#} for {vars:?} in {cwd}"));
        assert_eq!(wt.root, top, "root for {vars:?} in {cwd}");
        assert_eq!(wt.common_dir, common, "common dir for {vars:?} in {cwd}");
        let id = (git_dir != common).then(|| git_dir.file_name().unwrap().to_str().unwrap());
        assert_eq!(
            wt.id.as_deref(),
            id,
            "git dir {git_dir:?} for {vars:?} in {cwd}"
        );
        wt
    }

    /// An error with a hint and the exit code of every discovery error, mentioning `says`.
    fn fails(&self, cwd: &str, vars: &[(&str, String)], says: &str) {
        let err = self.ours(cwd, vars).unwrap_err();
        assert!(
            format!("{err:#}").contains(says),
            "{vars:?} in {cwd}: {err:#}"
        );
        assert!(crate::error::find_hint(&err).is_some(), "{err:#}");
        let outside = discover_in(Path::new("/"), &GitEnv::default()).unwrap_err();
        assert_eq!(
            crate::error::exit_code(&err),
            crate::error::exit_code(&outside)
        );
    }

    /// git pairs the work tree with another worktree's git dir (top level `top`); git-vmoat
    /// refuses.
    fn refused(&self, cwd: &str, vars: &[(&str, String)], top: &str) {
        let [git_top, ..] = self.git_says(cwd, vars).expect("git accepts the pairing");
        assert_eq!(git_top, self.base.join(top), "{vars:?} in {cwd}");
        self.fails(cwd, vars, "belongs to another worktree or repository");
    }

    /// git takes `top`, a directory inside the git dir's own checkout; git-vmoat refuses.
    fn inside(&self, cwd: &str, vars: &[(&str, String)], top: &str) {
        let [git_top, ..] = self.git_says(cwd, vars).expect("git accepts the pairing");
        assert_eq!(git_top, self.base.join(top), "{vars:?} in {cwd}");
        self.fails(cwd, vars, "is inside the checkout");
    }
}

/// main (a repository with an id) and its linked worktree `linked`, another repository,
/// a bare one with a worktree, plain directories, and a file.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let fx = Fixture { _tmp: tmp, base };
    for dir in ["plain", "dotfiles-home", "cwtree"] {
        std::fs::create_dir(fx.base.join(dir)).unwrap();
    }
    std::fs::write(fx.base.join("file"), "").unwrap();
    fx.git("", &["init", "-q", "main"]);
    fx.git("main", &["commit", "-q", "--allow-empty", "-m", "i"]);
    let id = "0123456789abcdef0123456789abcdef";
    fx.git("main", &["config", "vmoat.id", id]);
    fx.git("main", &["worktree", "add", "-q", "../linked"]);
    for dir in ["main/sub", "linked/lsub"] {
        std::fs::create_dir(fx.base.join(dir)).unwrap();
    }
    fx.git("", &["init", "-q", "other"]);
    fx.git("", &["clone", "-q", "--bare", "main", "bare.git"]);
    fx.git("bare.git", &["worktree", "add", "-q", "../of-bare"]);
    fx.git("", &["init", "-q", "cw"]);
    fx.git("cw", &["config", "core.worktree", "../../cwtree"]);
    fx
}

#[test]
fn git_work_tree_and_git_dir_resolve_as_git_resolves_them() {
    let fx = fixture();
    let p = |rel: &str| fx.path(rel);
    let wt = |v: String| vec![("GIT_WORK_TREE", v)];
    let dir = |v: String| vec![("GIT_DIR", v)];
    let both = |d: String, w: String| vec![("GIT_DIR", d), ("GIT_WORK_TREE", w)];
    // GIT_WORK_TREE alone: the repository found from the cwd, on that work tree.
    fx.agree("main", &wt(p("plain")));
    fx.agree("main/sub", &wt("../../plain".into()));
    fx.agree("main/sub", &wt("..".into()));
    fx.agree("linked/lsub", &wt(p("linked")));
    fx.agree("linked", &wt(".".into()));
    fx.agree("main/.git", &wt(p("main")));
    // A worktree nested in another one's checkout is its own.
    fx.git("main", &["worktree", "add", "-q", "../linked/nested"]);
    fx.agree("linked/nested", &wt(".".into()));
    // GIT_DIR with GIT_WORK_TREE, absolute or relative, a `.git` file too.
    fx.agree("plain", &both(p("main/.git"), p("main")));
    fx.agree("plain", &both("../main/.git".into(), "../main".into()));
    fx.agree("plain", &both(p("linked/.git"), p("linked")));
    let linked = fx.agree("plain", &both(p("main/.git/worktrees/linked"), p("linked")));
    assert_eq!(linked.main_root, Some(fx.base.join("main")));
    assert_eq!(
        linked.repo_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    // A bare repository with a work tree of its own choosing (the dotfiles layout).
    let home = fx.agree("plain", &both(p("bare.git"), p("dotfiles-home")));
    assert_eq!(home.main_root, Some(fx.base.join("dotfiles-home")));
    // GIT_DIR alone: core.worktree (relative to the git dir), else the cwd, which a linked
    // worktree's git dir takes too, even when its repository is bare.
    fx.agree("main", &dir(p("main/.git")));
    fx.agree("linked", &dir(p("main/.git/worktrees/linked")));
    fx.agree("of-bare", &dir(p("bare.git/worktrees/of-bare")));
    // ... but a directory inside the git dir's own checkout is only a part of its worktree.
    fx.inside("main/sub", &dir(p("main/.git")), "main/sub");
    fx.inside("main/sub", &dir("../.git".into()), "main/sub");
    fx.inside(
        "linked/lsub",
        &dir(p("main/.git/worktrees/linked")),
        "linked/lsub",
    );
    fx.inside("linked/lsub", &wt(p("linked/lsub")), "linked/lsub");
    fx.agree("plain", &dir(p("cw/.git")));
    // Nothing set, and a GIT_COMMON_DIR that says what discovery finds anyway.
    fx.agree("linked/lsub", &[]);
    fx.agree("linked", &[("GIT_COMMON_DIR", p("main/.git"))]);
    fx.agree(
        "main",
        &both(p("main/.git"), p("main"))
            .into_iter()
            .chain([("GIT_COMMON_DIR", p("main/.git"))])
            .collect::<Vec<_>>(),
    );
}

#[test]
fn a_work_tree_of_another_worktree_or_none_at_all_is_refused() {
    let fx = fixture();
    let p = |rel: &str| fx.path(rel);
    let wt = |v: String| vec![("GIT_WORK_TREE", v)];
    let config = std::fs::read(fx.base.join("main/.git/config")).unwrap();
    // git pairs one worktree's git dir with another's files; git-vmoat refuses.
    fx.refused("main", &wt(p("linked")), "linked");
    fx.refused("main", &wt(p("linked/lsub")), "linked/lsub");
    fx.refused("linked", &wt(p("main")), "main");
    fx.refused("main", &wt(p("other")), "other");
    fx.refused("linked", &[("GIT_DIR", p("main/.git"))], "linked");
    let pair = vec![
        ("GIT_DIR", p("main/.git/worktrees/linked")),
        ("GIT_WORK_TREE", p("main/sub")),
    ];
    fx.refused("plain", &pair, "main/sub");
    // A linked worktree's git dir with a directory that is no checkout at all.
    let linked_dir = vec![("GIT_DIR", p("main/.git/worktrees/linked"))];
    for (cwd, vars) in [
        ("plain", linked_dir.clone()),
        (
            "main",
            vec![
                ("GIT_DIR", p("main/.git/worktrees/linked")),
                ("GIT_WORK_TREE", p("plain")),
            ],
        ),
        (
            "plain",
            vec![
                ("GIT_DIR", p("linked/.git")),
                ("GIT_WORK_TREE", fx.base.display().to_string()),
            ],
        ),
    ] {
        fx.fails(cwd, &vars, "is the linked worktree");
    }
    // A worktree whose `.git` file is gone is still another worktree's checkout.
    fx.git("main", &["worktree", "add", "-q", "../gone"]);
    std::fs::remove_file(fx.base.join("gone/.git")).unwrap();
    fx.refused("main", &wt(p("gone")), "gone");
    // A work tree that is not a directory: git only fails once it needs the files.
    fx.fails("main", &wt(p("missing")), "is not a directory");
    fx.fails("main", &wt(p("file")), "is not a directory");
    fx.fails("main", &wt(String::new()), "GIT_WORK_TREE is set but empty");
    // What git itself refuses: no repository around the cwd, a GIT_DIR that is a checkout.
    for (cwd, vars) in [
        ("plain", wt(p("main"))),
        ("plain", vec![("GIT_DIR", p("main"))]),
        ("main", vec![("GIT_DIR", String::new())]),
    ] {
        assert!(fx.git_says(cwd, &vars).is_none(), "{vars:?}");
        assert!(fx.ours(cwd, &vars).is_err(), "{vars:?}");
    }
    // A common dir git would take from the environment but the open would not.
    fx.fails(
        "main",
        &[("GIT_COMMON_DIR", p("other/.git"))],
        "is not the common dir",
    );
    assert_eq!(
        std::fs::read(fx.base.join("main/.git/config")).unwrap(),
        config
    );
}
