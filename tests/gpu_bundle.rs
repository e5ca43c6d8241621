//! The GPU check's bundle (`make gpu-bundle`, issue #20), built and its script run here on the CPU
//! (DEVICE=cpu QUICK=1): a GPU host gets the same folder and runs the same script.

use std::path::Path;
use std::process::Command;

#[test]
fn the_gpu_bundle_builds_under_64_mib_and_its_check_runs_on_the_cpu() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("radsam-gpu-bundle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bundle = dir.join("bundle");
    // The bundle takes the binary this test was built with.
    let target = Path::new(env!("CARGO_BIN_EXE_radsam")).parent().unwrap().parent().unwrap();
    let built = Command::new("bash")
        .arg(root.join("scripts/gpu_bundle.sh"))
        .arg(&bundle)
        .env("CARGO_TARGET_DIR", target)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let du = Command::new("du").arg("-sb").arg(&bundle).output().unwrap();
    let size: u64 = String::from_utf8_lossy(&du.stdout).split_whitespace().next().unwrap().parse().unwrap();
    assert!(size < 64 << 20, "{size} bytes");
    let libraries = std::fs::read_to_string(bundle.join("libraries.txt")).unwrap();
    assert!(libraries.contains("libtorch_cuda.so"), "{libraries}");

    let out = dir.join("out");
    let ran = Command::new("bash")
        .arg(bundle.join("run.sh"))
        .env("DEVICE", "cpu")
        .env("QUICK", "1")
        .env("OUT", &out)
        .env(
            "PATH",
            format!("{}:{}", radsam::assets::cache_dir().join("venv/bin").display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}{}", String::from_utf8_lossy(&ran.stdout), String::from_utf8_lossy(&ran.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("gpu_check.json")).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report["device"], "cpu");
    for precision in ["f32", "f16"] {
        let segment = &report["segment"][precision];
        assert_eq!(segment["encoded_slices"], 20, "{segment}");
        assert!(segment["targets"]["liver"]["dice"].as_f64().unwrap() > 0.85, "{segment}");
        for batch in ["1", "2"] {
            assert!(report["encoder"][precision][batch]["slices_per_second"].as_f64().unwrap() > 0.0);
            assert_eq!(report["encoder"][precision][batch]["half"], false, "no autocast on the CPU");
        }
        assert_eq!(report["propagation"][precision]["slices"], 12);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
