;; The cost of a wasm exception in MVVM: `_start` calls $deep DEPTH frames
;; deep ITERS times; in the THROW build the innermost frame throws and a
;; try_table in `_start` catches, in the RETURN build it returns the same
;; value. The difference of the two run times over ITERS is the cost of
;; one throw (walk DEPTH frames, find the handler, enter it).
;; `bench/eh/throw-cost.sh` substitutes the three placeholders.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (tag $e (param i32))
  (memory (export "memory") 1)
  (func $deep (param $n i32) (param $v i32) (result i32)
    (if (i32.eqz (local.get $n))
      (then
        (if (i32.const @THROW@) (then (throw $e (local.get $v))))
        (return (local.get $v))))
    (i32.add
      (call $deep (i32.sub (local.get $n) (i32.const 1)) (local.get $v))
      (i32.const 1)))
  (func (export "_start")
    (local $i i32)
    (local $sum i32)
    (loop $l
      (block $caught (result i32)
        (try_table (result i32) (catch $e $caught)
          (call $deep (i32.const @DEPTH@) (local.get $i))))
      (local.set $sum (i32.add (local.get $sum)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const @ITERS@))))
    ;; Exit code: the low bits of the sum, so the work is not dead.
    (call $exit (i32.and (local.get $sum) (i32.const 0x3f))))
)
