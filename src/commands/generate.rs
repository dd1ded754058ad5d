//! `completions` and the hidden `generate`: print or write the generated completion scripts and
//! man pages (see gendocs.rs). One module for both commands: they output the same text.

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{GenerateKind, Shell};
use crate::gendocs::{completion, completion_files, man_pages};
use crate::output;

pub fn print_completion(shell: Shell) -> Result<()> {
    output::data(completion(shell))
}

pub fn run(kind: GenerateKind, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let files: Vec<(String, Vec<u8>)> = match kind {
        GenerateKind::Completions => completion_files()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.into_bytes()))
            .collect(),
        GenerateKind::Man => man_pages()?,
    };
    for (name, bytes) in files {
        let p = out.join(&name);
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
        output::info(format!("wrote {}", p.display()));
    }
    Ok(())
}
