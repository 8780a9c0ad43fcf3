//! The process-wide wasmtime engine and the ticker that drives call deadlines.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(5);

/// The engine every guest is compiled with. Epoch interruption is on; a background thread
/// advances the epoch every [`TICK`].
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).expect("the sandbox's engine configuration is valid");
        let ticker = engine.clone();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                loop {
                    ticker.increment_epoch();
                    std::thread::sleep(TICK);
                }
            })
            .expect("spawning the epoch ticker");
        engine
    })
}

/// The number of ticks in `timeout`, at least one.
pub fn ticks(timeout: Duration) -> u64 {
    (timeout.as_micros() / TICK.as_micros()).max(1) as u64
}

/// Compiles `bytes` into a component, reusing an earlier compilation of the same bytes: one in
/// this process (several sandboxes of one guest, or a guest file restored to an earlier
/// version), or one saved by an earlier process in the [compiled cache](crate::compiled).
pub fn compile(bytes: &[u8]) -> wasmtime::Result<Component> {
    static LOADED: OnceLock<Mutex<HashMap<[u8; 32], Component>>> = OnceLock::new();
    let loaded = LOADED.get_or_init(Default::default);
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    if let Some(component) = loaded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&digest)
    {
        return Ok(component.clone());
    }
    let component = crate::compiled::load_or_compile(engine(), &digest, bytes)?;
    loaded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(digest, component.clone());
    Ok(component)
}
