//! Build script: three things that make every start of the binary cheaper
//! (the hook runs it before every tool call), and a hash of the source that
//! keys the config cache (`source_hash`).
//!
//! 1. The embedded price table (`src/pricing/prices.yaml`) is turned into
//!    Rust code that builds the same rows, so no run parses YAML for it.
//!    The YAML stays the one source; `pricing::table`'s tests check that
//!    the generated rows equal what parsing it gives.
//! 2. On Linux (glibc) the binary is linked as a position-dependent executable
//!    (`-no-pie`): a PIE of this size has ~43,000 relative relocations that
//!    the dynamic loader applies at every start, writing ~300 pages (a
//!    copy-on-write page fault each), about 1 ms per run on the machines
//!    measured (README, "Benchmark"). Shared libraries, the heap and the
//!    stack are still placed at random addresses.
//! 3. Also on Linux (glibc): the unwinder (`_Unwind_*`, which panics use) is
//!    linked from GCC's static `libgcc_eh.a` instead of `libgcc_s.so.1`,
//!    whose load-time constructor asks the CPU for its features with ~15
//!    `cpuid` instructions: each one traps to the hypervisor in a VM,
//!    ~70 µs of every start on the benchmark machine. Where the C compiler
//!    knows no `libgcc_eh.a`, `libgcc_s` is linked as before.
//!
//! 2 and 3 matter for a dynamically linked build (`RUSTFLAGS` set, which
//! overrides `.cargo/config.toml`); the default build on Linux (glibc) links
//! everything statically (`.cargo/config.toml`), which needs neither.

use std::fmt::Write as _;
use std::path::Path;

use serde_yaml_ng::Value;

fn main() {
    println!("cargo:rerun-if-changed=src/pricing/prices.yaml");
    println!("cargo:rerun-if-changed=build.rs");
    source_hash();
    let cfg = |k: &str| std::env::var(k).unwrap_or_default();
    // glibc targets only: musl's static-PIE link takes no `-no-pie`.
    if cfg("CARGO_CFG_TARGET_OS") == "linux" && cfg("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        if let Some(dir) = libgcc_eh_dir() {
            // Before std's `-lgcc_s` on the link line: the unwinder's symbols
            // resolve here and `--as-needed` drops libgcc_s.
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
        }
    }
    let yaml = std::fs::read_to_string("src/pricing/prices.yaml")
        .expect("src/pricing/prices.yaml is readable");
    let code = generate(&yaml).unwrap_or_else(|e| panic!("src/pricing/prices.yaml: {e}"));
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("embedded_prices.rs"), code).expect("OUT_DIR is writable");
}

/// `OCTO_BUDGET_SOURCE_HASH`: a hash of every file under `src/` and of
/// Cargo.lock, which the config cache's key includes (`config::cached`): a
/// config stored by one build is never read back by another, whose
/// validation may differ.
fn source_hash() {
    use std::hash::Hasher as _;
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let mut files = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files.push("Cargo.lock".into());
    // SipHash with fixed keys: the same bytes give the same hash.
    let mut h = std::hash::DefaultHasher::new();
    for f in &files {
        for bytes in [
            f.as_os_str().as_encoded_bytes(),
            &std::fs::read(f).unwrap_or_default(),
        ] {
            h.write_usize(bytes.len());
            h.write(bytes);
        }
    }
    println!(
        "cargo:rustc-env=OCTO_BUDGET_SOURCE_HASH={:016x}",
        h.finish()
    );
}

/// The folder of the C compiler's `libgcc_eh.a` (GCC's static unwinder),
/// if it has one: `cc -print-file-name` answers the bare name when not.
fn libgcc_eh_dir() -> Option<std::path::PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = std::process::Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = std::path::PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_absolute() && path.is_file())
        .then(|| path.parent().map(Path::to_path_buf))
        .flatten()
}

/// Rust source of `fn embedded_spec() -> TableSpec` for the table.
fn generate(yaml: &str) -> Result<String, String> {
    let doc: Value = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
    let top = mapping(
        &doc,
        "the table",
        &["effective_from", "web_search_per_1000", "models"],
    )?;
    let mut s = String::from(
        "// Generated by build.rs from src/pricing/prices.yaml: do not edit.\n\
         fn embedded_spec() -> TableSpec {\n    TableSpec {\n",
    );
    let _ = writeln!(
        s,
        "        effective_from: {},",
        date(get(top, "effective_from")?)?
    );
    let _ = writeln!(
        s,
        "        web_search_per_1000: {},",
        number(get(top, "web_search_per_1000")?, "web_search_per_1000")?
    );
    s.push_str("        models: vec![\n");
    let models = get(top, "models")?
        .as_sequence()
        .ok_or("models is not a list")?;
    for (i, m) in models.iter().enumerate() {
        row(&mut s, m).map_err(|e| format!("models[{i}]: {e}"))?;
    }
    s.push_str("        ],\n    }\n}\n");
    Ok(s)
}

const ROW_KEYS: [&str; 11] = [
    "ids",
    "input",
    "output",
    "cache_write_5m",
    "cache_write_1h",
    "cache_read",
    "long_context",
    "fast",
    "us_geo",
    "effective_from",
    "source",
];
const RATE_KEYS: [&str; 5] = [
    "input",
    "output",
    "cache_write_5m",
    "cache_write_1h",
    "cache_read",
];

fn row(s: &mut String, m: &Value) -> Result<(), String> {
    let m = mapping(m, "a model row", &ROW_KEYS)?;
    s.push_str("            RowSpec {\n                ids: vec![");
    for id in get(m, "ids")?.as_sequence().ok_or("ids is not a list")? {
        let id = id.as_str().ok_or("an id is not a string")?;
        let _ = write!(s, "{id:?}.to_owned(), ");
    }
    s.push_str("],\n");
    rates(s, m, "                ")?;
    match m.get("long_context") {
        None => s.push_str("                long_context: None,\n"),
        Some(lc) => {
            let mut keys = vec!["above_prompt_tokens"];
            keys.extend(RATE_KEYS);
            let lc = mapping(lc, "long_context", &keys)?;
            let above = get(lc, "above_prompt_tokens")?
                .as_u64()
                .ok_or("long_context.above_prompt_tokens is not a whole number")?;
            let _ = writeln!(
                s,
                "                long_context: Some(LongContextSpec {{\n                    above_prompt_tokens: {above},"
            );
            rates(s, lc, "                    ")?;
            s.push_str("                }),\n");
        }
    }
    for key in ["fast", "us_geo"] {
        let _ = writeln!(s, "                {key}: {},", optional_number(m, key)?);
    }
    let from = match m.get("effective_from") {
        Some(d) => format!("Some({})", date(d)?),
        None => "None".into(),
    };
    let _ = writeln!(s, "                effective_from: {from},");
    let source = match m.get("source") {
        Some(v) => format!(
            "Some({:?}.to_owned())",
            v.as_str().ok_or("source is not a string")?
        ),
        None => "None".into(),
    };
    let _ = writeln!(s, "                source: {source},\n            }},");
    Ok(())
}

/// The five rate fields of a row or of its `long_context`.
fn rates(s: &mut String, m: &serde_yaml_ng::Mapping, indent: &str) -> Result<(), String> {
    for key in ["input", "output"] {
        let _ = writeln!(s, "{indent}{key}: {},", number(get(m, key)?, key)?);
    }
    for key in ["cache_write_5m", "cache_write_1h", "cache_read"] {
        let _ = writeln!(s, "{indent}{key}: {},", optional_number(m, key)?);
    }
    Ok(())
}

fn mapping<'a>(
    v: &'a Value,
    what: &str,
    allowed: &[&str],
) -> Result<&'a serde_yaml_ng::Mapping, String> {
    let m = v
        .as_mapping()
        .ok_or_else(|| format!("{what} is not a mapping"))?;
    for k in m.keys() {
        let k = k
            .as_str()
            .ok_or_else(|| format!("{what} has a key that is not a string"))?;
        if !allowed.contains(&k) {
            return Err(format!("{what} has an unknown key {k:?}"));
        }
    }
    Ok(m)
}

fn get<'a>(m: &'a serde_yaml_ng::Mapping, key: &str) -> Result<&'a Value, String> {
    m.get(key).ok_or_else(|| format!("{key} is missing"))
}

/// An f64 literal that reads back as the same number: `{:?}` prints the
/// shortest decimal that round-trips.
fn number(v: &Value, key: &str) -> Result<String, String> {
    let f = v.as_f64().ok_or_else(|| format!("{key} is not a number"))?;
    Ok(format!("{f:?}_f64"))
}

fn optional_number(m: &serde_yaml_ng::Mapping, key: &str) -> Result<String, String> {
    Ok(match m.get(key) {
        Some(v) => format!("Some({})", number(v, key)?),
        None => "None".into(),
    })
}

fn date(v: &Value) -> Result<String, String> {
    let s = v.as_str().ok_or("a date is not a string")?;
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() == 3 && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return Err(format!("{s:?} is not a YYYY-MM-DD date"));
    }
    let n = |p: &str| p.trim_start_matches('0').parse::<u32>().unwrap_or(0);
    Ok(format!(
        "NaiveDate::from_ymd_opt({}, {}, {}).expect(\"a valid date in prices.yaml\")",
        n(parts[0]),
        n(parts[1]),
        n(parts[2])
    ))
}
