//! The process-wide wasmtime engine and the ticker that drives call deadlines.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

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

/// Compiles `bytes` into a component, reusing an earlier compilation of the same bytes (several
/// sandboxes of one guest, or a guest file restored to an earlier version).
pub fn compile(bytes: &[u8]) -> wasmtime::Result<Component> {
    static CACHE: OnceLock<Mutex<HashMap<Vec<u8>, Component>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(component) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(bytes) {
        return Ok(component.clone());
    }
    let component = Component::new(engine(), bytes)?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(bytes.to_vec(), component.clone());
    Ok(component)
}
