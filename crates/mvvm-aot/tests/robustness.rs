//! `compile` must return an error, never panic, on any input: mutated and
//! truncated copies of a valid module are thrown at it.

use mvvm_aot::{CompileOptions, compile};

const MODULE: &str = r#"
(module
  (import "env" "f" (func $f (param i32) (result i32)))
  (memory 1)
  (table 2 funcref)
  (global $g (mut i32) (i32.const 1))
  (elem (i32.const 0) func $a $f)
  (data (i32.const 8) "abc")
  (func $a (export "a") (param i32) (result i32)
    (block (result i32)
      (loop
        (br_if 1 (i32.const 3) (i32.eqz (local.get 0)))
        (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
        (br_table 0 0 (local.get 0)))
      (i32.const 5))
    (i32.add (call $f (i32.load (i32.const 8))))
    (global.set $g (call_indirect (param i32) (result i32) (i32.const 2) (i32.const 1)))
    (global.get $g)
    (i32.add)))
"#;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_modules_never_panic() {
    let wasm = wat::parse_str(MODULE).unwrap();
    let opts = CompileOptions {
        opt_level: 0,
        ..CompileOptions::default()
    };
    compile(&wasm, &opts).expect("the original compiles");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for i in 0..3000 {
        let mut bytes = wasm.clone();
        match i % 3 {
            0 => {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            1 => {
                for _ in 0..4 {
                    let at = rng.below(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            _ => bytes.truncate(rng.below(bytes.len())),
        }
        let result = std::panic::catch_unwind(|| compile(&bytes, &opts));
        match result {
            Ok(Ok(_)) => accepted += 1,
            Ok(Err(e)) => assert!(!e.to_string().is_empty()),
            Err(_) => panic!("compile panicked on mutation {i}: {bytes:02x?}"),
        }
    }
    println!("{accepted} mutated modules were still valid");
}
