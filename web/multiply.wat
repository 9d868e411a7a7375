;; The one product worker.js spends nearly all its time in, in WebAssembly SIMD: out[j] = sum_i x[i] * matrix[j * n + i]
;; for j < rows, the matrix stored one row per output. Four 4-wide sums per row, then the rest one at a time.
;; Four to five times the speed of the same loop in JavaScript here (bench/README.md); worker.js falls back to
;; JavaScript where WebAssembly SIMD is missing. multiply.wasm is built from this file with WABT:
;;   npx -p wabt@1.0.39 wat2wasm web/multiply.wat -o web/multiply.wasm
(module
  (import "env" "memory" (memory 1))
  (func (export "multiply") (param $x i32) (param $matrix i32) (param $out i32) (param $n i32) (param $rows i32)
    (local $row_end i32) (local $i i32) (local $wide_end i32) (local $quad_end i32) (local $end i32)
    (local $a v128) (local $b v128) (local $c v128) (local $d v128) (local $sum f32)
    ;; addresses in bytes; $i walks a row of the matrix while $x + ($i - row start) walks x
    (local $row i32) (local $xi i32)
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $rows) (i32.const 2))))
    (local.set $row (local.get $matrix))
    (block $done
      (loop $rows_loop
        (br_if $done (i32.ge_u (local.get $out) (local.get $end)))
        (local.set $a (v128.const f32x4 0 0 0 0))
        (local.set $b (v128.const f32x4 0 0 0 0))
        (local.set $c (v128.const f32x4 0 0 0 0))
        (local.set $d (v128.const f32x4 0 0 0 0))
        (local.set $i (local.get $row))
        (local.set $xi (local.get $x))
        (local.set $row_end (i32.add (local.get $row) (i32.shl (local.get $n) (i32.const 2))))
        (local.set $wide_end (i32.add (local.get $row) (i32.shl (i32.and (local.get $n) (i32.const -16)) (i32.const 2))))
        (local.set $quad_end (i32.add (local.get $row) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
        (block $wide_done
          (loop $wide
            (br_if $wide_done (i32.ge_u (local.get $i) (local.get $wide_end)))
            (local.set $a (f32x4.add (local.get $a) (f32x4.mul (v128.load (local.get $xi)) (v128.load (local.get $i)))))
            (local.set $b (f32x4.add (local.get $b) (f32x4.mul (v128.load offset=16 (local.get $xi)) (v128.load offset=16 (local.get $i)))))
            (local.set $c (f32x4.add (local.get $c) (f32x4.mul (v128.load offset=32 (local.get $xi)) (v128.load offset=32 (local.get $i)))))
            (local.set $d (f32x4.add (local.get $d) (f32x4.mul (v128.load offset=48 (local.get $xi)) (v128.load offset=48 (local.get $i)))))
            (local.set $i (i32.add (local.get $i) (i32.const 64)))
            (local.set $xi (i32.add (local.get $xi) (i32.const 64)))
            (br $wide)))
        (block $quad_done
          (loop $quad
            (br_if $quad_done (i32.ge_u (local.get $i) (local.get $quad_end)))
            (local.set $a (f32x4.add (local.get $a) (f32x4.mul (v128.load (local.get $xi)) (v128.load (local.get $i)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (local.set $xi (i32.add (local.get $xi) (i32.const 16)))
            (br $quad)))
        (local.set $a (f32x4.add (f32x4.add (local.get $a) (local.get $b)) (f32x4.add (local.get $c) (local.get $d))))
        (local.set $sum
          (f32.add
            (f32.add (f32x4.extract_lane 0 (local.get $a)) (f32x4.extract_lane 1 (local.get $a)))
            (f32.add (f32x4.extract_lane 2 (local.get $a)) (f32x4.extract_lane 3 (local.get $a)))))
        (block $tail_done
          (loop $tail
            (br_if $tail_done (i32.ge_u (local.get $i) (local.get $row_end)))
            (local.set $sum (f32.add (local.get $sum) (f32.mul (f32.load (local.get $xi)) (f32.load (local.get $i)))))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (local.set $xi (i32.add (local.get $xi) (i32.const 4)))
            (br $tail)))
        (f32.store (local.get $out) (local.get $sum))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (local.set $row (local.get $row_end))
        (br $rows_loop)))))
