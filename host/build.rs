//! Records when this build was made, as the earliest time the node can be
//! running at: a clock that reads earlier lost its time (a box woken after a
//! power cut reads 1970), and the node says so instead of trusting it.
//! `SOURCE_DATE_EPOCH`, when set, keeps the build reproducible.

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs())
        });
    println!("cargo:rustc-env=OUTPOST_BUILT_AT={now}");
}
