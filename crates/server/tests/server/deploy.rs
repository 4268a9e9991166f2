//! The deployment files in `deploy/`: the systemd unit passes `systemd-analyze verify` and keeps
//! its hardening.

use std::process::Command;

/// The unit with its `ExecStart` binary pointed at the one just built (verify checks that the
/// binary exists); every other line as shipped.
fn unit_for_verify(dir: &std::path::Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/natter.service"
    ))
    .unwrap();
    let shipped = "ExecStart=/usr/local/bin/natter --config /etc/natter/natter.conf";
    assert!(unit.contains(shipped), "the unit's ExecStart changed");
    let built = format!(
        "ExecStart={} --config /etc/natter/natter.conf",
        env!("CARGO_BIN_EXE_natter")
    );
    let path = dir.join("natter.service");
    std::fs::write(&path, unit.replace(shipped, &built)).unwrap();
    path
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify_and_is_hardened() {
    let dir = std::env::temp_dir().join(format!("natter-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = unit_for_verify(&dir);
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs (Debian's systemd package; scripts/test installs it)");
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{complaints}");
    // verify exits 0 on unknown keys and bad values too; it only says so.
    assert!(
        !complaints.contains("natter.service"),
        "systemd-analyze verify complained:\n{complaints}"
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|line| {
            let rest = line
                .split("Overall exposure level for natter.service:")
                .nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    // 0 is fully locked down, 10 is nothing; "OK" is below 2 in systemd's own scale.
    assert!(exposure < 2.0, "exposure {exposure}:\n{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
