;; A recursion with no loop at all (a naive Fibonacci tree walk): the
;; counter-loop policy must still reach its probes here, at function entries.
;; Exits with fib(N) mod 256, N = 24.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $fib (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else
        (i32.add
          (call $fib (i32.sub (local.get $n) (i32.const 1)))
          (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "_start")
    (call $exit (i32.and (call $fib (i32.const 24)) (i32.const 255)))))
