//! Any bytes given to the CSV import planner: it must answer with a plan or an error, never
//! panic, and every line number it reports must lie inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use salesdept_agents::linkedin::csv_import::plan_import;

fuzz_target!(|data: &[u8]| {
    if let Ok(plan) = plan_import(data) {
        let lines = data.iter().filter(|byte| **byte == b'\n').count() as u64 + 1;
        for prospect in &plan.accepted {
            assert!(prospect.line >= 2 && prospect.line <= lines, "line {}", prospect.line);
        }
        for (line, _) in &plan.duplicates {
            assert!(*line >= 2 && *line <= lines, "line {line}");
        }
    }
});
