;; cnnviz live kernel editor: cross-correlation of one zero-padded float32 plane with a 3×3 or 5×5 kernel,
;; four output pixels at a time (WebAssembly SIMD, f32x4).
;;
;; The source of the module embedded in cnnviz-live.js (SIMD_WASM, base64): after editing this file run
;;     .venv/bin/python tools/build_live_wasm.py
;; which assembles it (a small assembler for the subset written here, in that tool) and rewrites the string;
;; tests/test_live_explorers.py checks that the string is what the tool makes of this file.
;;
;; It mirrors correlate() in cnnviz-live.js (which mirrors cnnviz.kernels.filter_image), in float32.
;; All pointers are byte offsets into the imported memory, which the page lays out (see makeSimdEngine):
;;   k    the kernel's weights as float32, row-major (sep5: the row vector v[0..4], then the column vector u[0..4])
;;   src  a plane of h × w pixels padded with r = (f - 1)/2 zeros on every side: (h + 2r) rows of w + 2r floats
;;   dst  the output plane, h rows of w floats
;;   tmp  (sep5) h + 4 rows of w floats
;; Each row is computed four pixels at a time up to the next multiple of four: the last vector of a row reads
;; up to 3 floats past it and writes up to 3 floats into the start of the next row (computed after it, so they
;; are overwritten), and the page leaves 16 spare bytes after every buffer for the last row's.
;; Every function expects h ≥ 1 and w ≥ 1.
(module
  (import "env" "memory" (memory 1))

  ;; 3×3: out[y][x] = Σ_ij k[i][j] · src[y + i][x + j], the three products of a kernel row summed first
  (func $dense3 (export "dense3") (param $src i32) (param $dst i32) (param $h i32) (param $w i32) (param $k i32)
    (local $k0 v128) (local $k1 v128) (local $k2 v128)
    (local $k3 v128) (local $k4 v128) (local $k5 v128)
    (local $k6 v128) (local $k7 v128) (local $k8 v128)
    (local $row i32) (local $p i32) (local $q i32) (local $end i32) (local $y i32)
    (local.set $k0 (f32x4.splat (f32.load offset=0 (local.get $k))))
    (local.set $k1 (f32x4.splat (f32.load offset=4 (local.get $k))))
    (local.set $k2 (f32x4.splat (f32.load offset=8 (local.get $k))))
    (local.set $k3 (f32x4.splat (f32.load offset=12 (local.get $k))))
    (local.set $k4 (f32x4.splat (f32.load offset=16 (local.get $k))))
    (local.set $k5 (f32x4.splat (f32.load offset=20 (local.get $k))))
    (local.set $k6 (f32x4.splat (f32.load offset=24 (local.get $k))))
    (local.set $k7 (f32x4.splat (f32.load offset=28 (local.get $k))))
    (local.set $k8 (f32x4.splat (f32.load offset=32 (local.get $k))))
    (local.set $row (i32.shl (i32.add (local.get $w) (i32.const 2)) (i32.const 2)))   ;; a padded row, in bytes
    (loop $rows
      (local.set $p (i32.add (local.get $src) (i32.mul (local.get $y) (local.get $row))))
      (local.set $q (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $y) (local.get $w)) (i32.const 2))))
      (local.set $end (i32.add (local.get $q) (i32.shl (local.get $w) (i32.const 2))))
      (loop $cols
        (v128.store (local.get $q)
          (f32x4.add
            (f32x4.add
              (f32x4.add (f32x4.add (f32x4.mul (local.get $k0) (v128.load offset=0 (local.get $p)))
                                    (f32x4.mul (local.get $k1) (v128.load offset=4 (local.get $p))))
                         (f32x4.mul (local.get $k2) (v128.load offset=8 (local.get $p))))
              (f32x4.add (f32x4.add (f32x4.mul (local.get $k3) (v128.load offset=0 (i32.add (local.get $p) (local.get $row))))
                                    (f32x4.mul (local.get $k4) (v128.load offset=4 (i32.add (local.get $p) (local.get $row)))))
                         (f32x4.mul (local.get $k5) (v128.load offset=8 (i32.add (local.get $p) (local.get $row))))))
            (f32x4.add (f32x4.add (f32x4.mul (local.get $k6) (v128.load offset=0 (i32.add (local.get $p) (i32.shl (local.get $row) (i32.const 1)))))
                                  (f32x4.mul (local.get $k7) (v128.load offset=4 (i32.add (local.get $p) (i32.shl (local.get $row) (i32.const 1))))))
                       (f32x4.mul (local.get $k8) (v128.load offset=8 (i32.add (local.get $p) (i32.shl (local.get $row) (i32.const 1))))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br_if $cols (i32.lt_u (local.tee $q (i32.add (local.get $q) (i32.const 16))) (local.get $end))))
      (br_if $rows (i32.lt_u (local.tee $y (i32.add (local.get $y) (i32.const 1))) (local.get $h)))))

  ;; 5×5, any kernel: the five products of each kernel row summed, then the five row sums
  (func $dense5 (export "dense5") (param $src i32) (param $dst i32) (param $h i32) (param $w i32) (param $k i32)
    (local $k00 v128) (local $k01 v128) (local $k02 v128) (local $k03 v128) (local $k04 v128)
    (local $k10 v128) (local $k11 v128) (local $k12 v128) (local $k13 v128) (local $k14 v128)
    (local $k20 v128) (local $k21 v128) (local $k22 v128) (local $k23 v128) (local $k24 v128)
    (local $k30 v128) (local $k31 v128) (local $k32 v128) (local $k33 v128) (local $k34 v128)
    (local $k40 v128) (local $k41 v128) (local $k42 v128) (local $k43 v128) (local $k44 v128)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128) (local $s4 v128)
    (local $row i32) (local $p i32) (local $a i32) (local $q i32) (local $end i32) (local $y i32)
    (local.set $k00 (f32x4.splat (f32.load offset=0 (local.get $k))))
    (local.set $k01 (f32x4.splat (f32.load offset=4 (local.get $k))))
    (local.set $k02 (f32x4.splat (f32.load offset=8 (local.get $k))))
    (local.set $k03 (f32x4.splat (f32.load offset=12 (local.get $k))))
    (local.set $k04 (f32x4.splat (f32.load offset=16 (local.get $k))))
    (local.set $k10 (f32x4.splat (f32.load offset=20 (local.get $k))))
    (local.set $k11 (f32x4.splat (f32.load offset=24 (local.get $k))))
    (local.set $k12 (f32x4.splat (f32.load offset=28 (local.get $k))))
    (local.set $k13 (f32x4.splat (f32.load offset=32 (local.get $k))))
    (local.set $k14 (f32x4.splat (f32.load offset=36 (local.get $k))))
    (local.set $k20 (f32x4.splat (f32.load offset=40 (local.get $k))))
    (local.set $k21 (f32x4.splat (f32.load offset=44 (local.get $k))))
    (local.set $k22 (f32x4.splat (f32.load offset=48 (local.get $k))))
    (local.set $k23 (f32x4.splat (f32.load offset=52 (local.get $k))))
    (local.set $k24 (f32x4.splat (f32.load offset=56 (local.get $k))))
    (local.set $k30 (f32x4.splat (f32.load offset=60 (local.get $k))))
    (local.set $k31 (f32x4.splat (f32.load offset=64 (local.get $k))))
    (local.set $k32 (f32x4.splat (f32.load offset=68 (local.get $k))))
    (local.set $k33 (f32x4.splat (f32.load offset=72 (local.get $k))))
    (local.set $k34 (f32x4.splat (f32.load offset=76 (local.get $k))))
    (local.set $k40 (f32x4.splat (f32.load offset=80 (local.get $k))))
    (local.set $k41 (f32x4.splat (f32.load offset=84 (local.get $k))))
    (local.set $k42 (f32x4.splat (f32.load offset=88 (local.get $k))))
    (local.set $k43 (f32x4.splat (f32.load offset=92 (local.get $k))))
    (local.set $k44 (f32x4.splat (f32.load offset=96 (local.get $k))))
    (local.set $row (i32.shl (i32.add (local.get $w) (i32.const 4)) (i32.const 2)))   ;; a padded row, in bytes
    (loop $rows
      (local.set $p (i32.add (local.get $src) (i32.mul (local.get $y) (local.get $row))))
      (local.set $q (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $y) (local.get $w)) (i32.const 2))))
      (local.set $end (i32.add (local.get $q) (i32.shl (local.get $w) (i32.const 2))))
      (loop $cols
        (local.set $a (local.get $p))                                                   ;; kernel row 0
        (local.set $s0 (f32x4.add (f32x4.add (f32x4.add (f32x4.add
          (f32x4.mul (local.get $k00) (v128.load offset=0 (local.get $a)))
          (f32x4.mul (local.get $k01) (v128.load offset=4 (local.get $a))))
          (f32x4.mul (local.get $k02) (v128.load offset=8 (local.get $a))))
          (f32x4.mul (local.get $k03) (v128.load offset=12 (local.get $a))))
          (f32x4.mul (local.get $k04) (v128.load offset=16 (local.get $a)))))
        (local.set $a (i32.add (local.get $a) (local.get $row)))                         ;; kernel row 1
        (local.set $s1 (f32x4.add (f32x4.add (f32x4.add (f32x4.add
          (f32x4.mul (local.get $k10) (v128.load offset=0 (local.get $a)))
          (f32x4.mul (local.get $k11) (v128.load offset=4 (local.get $a))))
          (f32x4.mul (local.get $k12) (v128.load offset=8 (local.get $a))))
          (f32x4.mul (local.get $k13) (v128.load offset=12 (local.get $a))))
          (f32x4.mul (local.get $k14) (v128.load offset=16 (local.get $a)))))
        (local.set $a (i32.add (local.get $a) (local.get $row)))                         ;; kernel row 2
        (local.set $s2 (f32x4.add (f32x4.add (f32x4.add (f32x4.add
          (f32x4.mul (local.get $k20) (v128.load offset=0 (local.get $a)))
          (f32x4.mul (local.get $k21) (v128.load offset=4 (local.get $a))))
          (f32x4.mul (local.get $k22) (v128.load offset=8 (local.get $a))))
          (f32x4.mul (local.get $k23) (v128.load offset=12 (local.get $a))))
          (f32x4.mul (local.get $k24) (v128.load offset=16 (local.get $a)))))
        (local.set $a (i32.add (local.get $a) (local.get $row)))                         ;; kernel row 3
        (local.set $s3 (f32x4.add (f32x4.add (f32x4.add (f32x4.add
          (f32x4.mul (local.get $k30) (v128.load offset=0 (local.get $a)))
          (f32x4.mul (local.get $k31) (v128.load offset=4 (local.get $a))))
          (f32x4.mul (local.get $k32) (v128.load offset=8 (local.get $a))))
          (f32x4.mul (local.get $k33) (v128.load offset=12 (local.get $a))))
          (f32x4.mul (local.get $k34) (v128.load offset=16 (local.get $a)))))
        (local.set $a (i32.add (local.get $a) (local.get $row)))                         ;; kernel row 4
        (local.set $s4 (f32x4.add (f32x4.add (f32x4.add (f32x4.add
          (f32x4.mul (local.get $k40) (v128.load offset=0 (local.get $a)))
          (f32x4.mul (local.get $k41) (v128.load offset=4 (local.get $a))))
          (f32x4.mul (local.get $k42) (v128.load offset=8 (local.get $a))))
          (f32x4.mul (local.get $k43) (v128.load offset=12 (local.get $a))))
          (f32x4.mul (local.get $k44) (v128.load offset=16 (local.get $a)))))
        (v128.store (local.get $q)
          (f32x4.add (f32x4.add (f32x4.add (f32x4.add (local.get $s0) (local.get $s1)) (local.get $s2)) (local.get $s3))
                     (local.get $s4)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br_if $cols (i32.lt_u (local.tee $q (i32.add (local.get $q) (i32.const 16))) (local.get $end))))
      (br_if $rows (i32.lt_u (local.tee $y (i32.add (local.get $y) (i32.const 1))) (local.get $h)))))

  ;; 5×5 that is an outer product u vᵀ (box, Gaussian): along each padded row with v into tmp, then down each
  ;; column of tmp with u (as correlate's separable path)
  (func $sep5 (export "sep5") (param $src i32) (param $dst i32) (param $tmp i32) (param $h i32) (param $w i32)
        (param $k i32)
    (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128) (local $c4 v128)
    (local $row i32) (local $p i32) (local $q i32) (local $end i32) (local $y i32) (local $n i32)
    (local.set $c0 (f32x4.splat (f32.load offset=0 (local.get $k))))                  ;; v: along the rows
    (local.set $c1 (f32x4.splat (f32.load offset=4 (local.get $k))))
    (local.set $c2 (f32x4.splat (f32.load offset=8 (local.get $k))))
    (local.set $c3 (f32x4.splat (f32.load offset=12 (local.get $k))))
    (local.set $c4 (f32x4.splat (f32.load offset=16 (local.get $k))))
    (local.set $row (i32.shl (i32.add (local.get $w) (i32.const 4)) (i32.const 2)))   ;; a padded row, in bytes
    (local.set $n (i32.add (local.get $h) (i32.const 4)))
    (loop $rows
      (local.set $p (i32.add (local.get $src) (i32.mul (local.get $y) (local.get $row))))
      (local.set $q (i32.add (local.get $tmp) (i32.shl (i32.mul (local.get $y) (local.get $w)) (i32.const 2))))
      (local.set $end (i32.add (local.get $q) (i32.shl (local.get $w) (i32.const 2))))
      (loop $cols
        (v128.store (local.get $q)
          (f32x4.add (f32x4.add (f32x4.add (f32x4.add
            (f32x4.mul (local.get $c0) (v128.load offset=0 (local.get $p)))
            (f32x4.mul (local.get $c1) (v128.load offset=4 (local.get $p))))
            (f32x4.mul (local.get $c2) (v128.load offset=8 (local.get $p))))
            (f32x4.mul (local.get $c3) (v128.load offset=12 (local.get $p))))
            (f32x4.mul (local.get $c4) (v128.load offset=16 (local.get $p)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br_if $cols (i32.lt_u (local.tee $q (i32.add (local.get $q) (i32.const 16))) (local.get $end))))
      (br_if $rows (i32.lt_u (local.tee $y (i32.add (local.get $y) (i32.const 1))) (local.get $n))))
    (local.set $c0 (f32x4.splat (f32.load offset=20 (local.get $k))))                 ;; u: down the columns
    (local.set $c1 (f32x4.splat (f32.load offset=24 (local.get $k))))
    (local.set $c2 (f32x4.splat (f32.load offset=28 (local.get $k))))
    (local.set $c3 (f32x4.splat (f32.load offset=32 (local.get $k))))
    (local.set $c4 (f32x4.splat (f32.load offset=36 (local.get $k))))
    (local.set $row (i32.shl (local.get $w) (i32.const 2)))                           ;; a row of tmp, in bytes
    (local.set $p (local.get $tmp))
    (local.set $q (local.get $dst))
    (local.set $end (i32.add (local.get $dst) (i32.mul (local.get $h) (local.get $row))))
    (loop $cols                            ;; tmp and dst are contiguous rows of w: one pass over h·w floats
      (v128.store (local.get $q)
        (f32x4.add (f32x4.add (f32x4.add (f32x4.add
          (f32x4.mul (local.get $c0) (v128.load (local.get $p)))
          (f32x4.mul (local.get $c1) (v128.load (i32.add (local.get $p) (local.get $row)))))
          (f32x4.mul (local.get $c2) (v128.load (i32.add (local.get $p) (i32.shl (local.get $row) (i32.const 1))))))
          (f32x4.mul (local.get $c3) (v128.load (i32.add (local.get $p) (i32.mul (local.get $row) (i32.const 3))))))
          (f32x4.mul (local.get $c4) (v128.load (i32.add (local.get $p) (i32.shl (local.get $row) (i32.const 2)))))))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br_if $cols (i32.lt_u (local.tee $q (i32.add (local.get $q) (i32.const 16))) (local.get $end)))))
)
