/* cnnviz live explorers: the kernel editor and the convolution explorer, computed in the reader's browser.
 *
 * Written for cnnviz (no framework, no network). Python stays the source of truth: every function here
 * mirrors one of cnnviz's (named in its comment), and the tests hold the page's numbers, sentences and
 * pixels to them. Nothing typed by a reader reaches eval or innerHTML: text goes in with textContent,
 * and the only markup (<b>, <br>) is built as DOM nodes.
 *
 * Entry point: cnnvizLive.mount(container, data), where data.kind is "kernel-editor" or "conv-explorer".
 *
 * The kernel editor's 3×3 and 5×5 correlations run in WebAssembly SIMD where the browser has it (the module's
 * source is cnnviz-live-simd.wat beside this file; its bytes are embedded below by tools/build_live_wasm.py),
 * else in the JavaScript loops of correlate.
 */
(function (root) {
  "use strict";
  var VERSION = 4;                              // a newer module replaces an older one in a long-lived page
  if (root.cnnvizLive && root.cnnvizLive.version >= VERSION) { return; }

  // ------------------------------------------------------------------ small helpers

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; }
      else if (key === "class") { node.className = attrs[key]; }
      else if (key === "style") { node.style.cssText = attrs[key]; }
      else { node.setAttribute(key, attrs[key]); }
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  /** Python's "{:,}" for an integer. */
  function thousands(n) {
    var s = String(Math.abs(n)), out = "";
    while (s.length > 3) { out = "," + s.slice(-3) + out; s = s.slice(0, -3); }
    return (n < 0 ? "-" : "") + s + out;
  }

  /** Python's repr() of a str, as cnnviz's sentences quote what a person typed: characters that Python does not
   *  print (str.isprintable: control, format, private-use, unassigned, separators other than the space) escaped
   *  as \xNN, \uNNNN or \UNNNNNNNN, counted in code points as Python counts them. */
  var PY_UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;
  function hex(code, digits) {
    var h = code.toString(16);
    while (h.length < digits) { h = "0" + h; }
    return h;
  }
  function pyRepr(s) {
    var quote = (s.indexOf("'") >= 0 && s.indexOf('"') < 0) ? '"' : "'";
    var out = "";
    Array.from(s).forEach(function (c) {
      var code = c.codePointAt(0);
      if (c === "\\") { out += "\\\\"; }
      else if (c === quote) { out += "\\" + c; }
      else if (c === "\n") { out += "\\n"; }
      else if (c === "\r") { out += "\\r"; }
      else if (c === "\t") { out += "\\t"; }
      else if (c === " " || !PY_UNPRINTABLE.test(c)) { out += c; }
      else if (code < 0x100) { out += "\\x" + hex(code, 2); }
      else if (code < 0x10000) { out += "\\u" + hex(code, 4); }
      else { out += "\\U" + hex(code, 8); }
    });
    return quote + out + quote;
  }

  /** Markup with <b> and <br> only (cnnviz's arithmetic text) as DOM nodes: no innerHTML. */
  function renderMarkup(target, markup) {
    target.textContent = "";
    var parts = markup.split(/(<b>|<\/b>|<br>)/), bold = false;
    parts.forEach(function (part) {
      if (part === "<b>") { bold = true; }
      else if (part === "</b>") { bold = false; }
      else if (part === "<br>") { target.appendChild(document.createElement("br")); }
      else if (part) { target.appendChild(bold ? el("b", { text: part }) : document.createTextNode(part)); }
    });
  }

  // ------------------------------------------------------------------ cnnviz.kernels.parse_entry

  var PY_FLOAT = /^[+-]?(?:(?:\d(?:_?\d)*)?\.\d(?:_?\d)*|\d(?:_?\d)*\.?)(?:[eE][+-]?\d(?:_?\d)*)?$/;
  var PY_SPECIAL = /^[+-]?(?:inf|infinity|nan)$/i;

  // Python's str.isspace (what str.strip removes), and Unicode's decimal digits (any script: Python's float reads
  // "１/９" or "٣" as a person typing with a Japanese or Arabic keyboard means them).
  var PY_SPACE = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  var PY_STRIP = new RegExp("^[" + PY_SPACE + "]+|[" + PY_SPACE + "]+$", "g");
  var PY_IS_SPACE = new RegExp("^[" + PY_SPACE + "]$");
  var DIGIT = /\p{Nd}/u;

  /** The value of a decimal digit of any script: Unicode encodes them in runs of ten, 0 to 9, so the value is the
   *  distance from the start of its run (runs that follow each other directly count on in tens). */
  function digitValue(c) {
    var code = c.codePointAt(0), start = code;
    while (start > 0 && DIGIT.test(String.fromCodePoint(start - 1))) { start--; }
    return (code - start) % 10;
  }

  /** Python's float(str): a number, or null where Python raises ValueError. As CPython does, non-ASCII spaces
   *  become spaces and decimal digits of any script ASCII digits first; any other non-ASCII character is refused. */
  function pyFloat(text) {
    var ascii = "", chars = Array.from(text);
    for (var i = 0; i < chars.length; i++) {
      var c = chars[i];
      if (c.charCodeAt(0) < 127) { ascii += c; }
      else if (PY_IS_SPACE.test(c)) { ascii += " "; }
      else if (DIGIT.test(c)) { ascii += String(digitValue(c)); }
      else { return null; }
    }
    var s = ascii.replace(/^[ \t\n\x0b\x0c\r]+|[ \t\n\x0b\x0c\r]+$/g, "");
    if (PY_SPECIAL.test(s)) {
      var neg = s[0] === "-";
      if (/nan$/i.test(s)) { return NaN; }
      return neg ? -Infinity : Infinity;
    }
    if (!PY_FLOAT.test(s)) { return null; }
    return Number(s.replace(/_/g, ""));
  }

  var EXAMPLES = "type a number such as 0, -1, 0.5 or 1/9.";

  /** cnnviz.kernels.parse_entry: {value} or {error: the same sentence}. */
  function parseEntry(text) {
    var s = String(text).replace(PY_STRIP, "").replace(/\u2212/g, "-");
    if (!s) { return { error: "is empty: type a number such as 0, -1 or 1/9." }; }
    var value;
    var slash = s.indexOf("/");
    if (slash >= 0) {
      var num = pyFloat(s.slice(0, slash)), den = pyFloat(s.slice(slash + 1));
      if (num === null || den === null) { return { error: pyRepr(s) + " is not a number: " + EXAMPLES }; }
      if (den === 0) { return { error: pyRepr(s) + " divides by zero: " + EXAMPLES }; }
      value = num / den;
    } else {
      value = pyFloat(s);
      if (value === null) { return { error: pyRepr(s) + " is not a number: " + EXAMPLES }; }
    }
    if (!isFinite(value)) {
      return { error: pyRepr(s) + " is not a finite number (NaN and infinity are not allowed): " + EXAMPLES };
    }
    return { value: value };
  }

  // ------------------------------------------------------------------ cnnviz.kernels.filter_image / for_display

  /** Zero-padded copy of a plane (H, W) with r pixels on every side, as float32. */
  function padPlane(plane, h, w, r) {
    var pw = w + 2 * r, out = new Float32Array((h + 2 * r) * pw);
    for (var y = 0; y < h; y++) { out.set(plane.subarray(y * w, (y + 1) * w), (y + r) * pw + r); }
    return out;
  }

  /** The kernel as (column, row) vectors when it is an outer product u vᵀ (box, Gaussian, Sobel), else null. */
  function separate(k, f) {
    var pr = 0, pc = 0, best = 0;
    for (var i = 0; i < f; i++) {
      for (var j = 0; j < f; j++) { if (Math.abs(k[i * f + j]) > best) { best = Math.abs(k[i * f + j]); pr = i; pc = j; } }
    }
    if (best === 0) { return null; }
    var u = new Float64Array(f), v = new Float64Array(f);
    for (i = 0; i < f; i++) { u[i] = k[i * f + pc]; }
    for (j = 0; j < f; j++) { v[j] = k[pr * f + j] / k[pr * f + pc]; }
    for (i = 0; i < f; i++) {
      for (j = 0; j < f; j++) {
        if (Math.abs(u[i] * v[j] - k[i * f + j]) > 1e-9 * best) { return null; }
      }
    }
    return { u: u, v: v };
  }

  /** Cross-correlate a padded plane with the f×f kernel k (row-major), "same" size, into out (H, W).
   *  Each output pixel is written once, its products summed in registers: 9 for a 3×3 kernel; for a 5×5
   *  kernel 10 when it is separable (box, Gaussian: along the rows, then down the columns), else 25. */
  function correlate(padded, h, w, k, f, out) {
    var r = (f - 1) >> 1, pw = w + 2 * r, y, x, o;
    if (f === 3) {
      var a0 = k[0], a1 = k[1], a2 = k[2], b0 = k[3], b1 = k[4], b2 = k[5], c0 = k[6], c1 = k[7], c2 = k[8];
      for (y = 0; y < h; y++) {
        var p0 = y * pw, p1 = p0 + pw, p2 = p1 + pw;
        o = y * w;
        for (x = 0; x < w; x++) {
          out[o + x] = a0 * padded[p0 + x] + a1 * padded[p0 + x + 1] + a2 * padded[p0 + x + 2]
                     + b0 * padded[p1 + x] + b1 * padded[p1 + x + 1] + b2 * padded[p1 + x + 2]
                     + c0 * padded[p2 + x] + c1 * padded[p2 + x + 1] + c2 * padded[p2 + x + 2];
        }
      }
      return out;
    }
    if (f === 5) {
      var sep = separate(k, 5);
      if (sep) {
        var n = (h + 4) * w;
        if (!correlate.rows || correlate.rows.length < n) { correlate.rows = new Float32Array(n); }
        var rows = correlate.rows, v = sep.v, u = sep.u;
        var v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3], v4 = v[4];
        for (y = 0; y < h + 4; y++) {          // along each padded row
          var q = y * pw;
          o = y * w;
          for (x = 0; x < w; x++) {
            rows[o + x] = v0 * padded[q + x] + v1 * padded[q + x + 1] + v2 * padded[q + x + 2]
                        + v3 * padded[q + x + 3] + v4 * padded[q + x + 4];
          }
        }
        var u0 = u[0], u1 = u[1], u2 = u[2], u3 = u[3], u4 = u[4], w2 = 2 * w, w3 = 3 * w, w4 = 4 * w;
        for (y = 0; y < h; y++) {              // then down each column
          o = y * w;
          for (x = 0; x < w; x++) {
            var t = o + x;
            out[t] = u0 * rows[t] + u1 * rows[t + w] + u2 * rows[t + w2] + u3 * rows[t + w3] + u4 * rows[t + w4];
          }
        }
        return out;
      }
      for (y = 0; y < h; y++) {
        o = y * w;
        for (x = 0; x < w; x++) { out[o + x] = 0; }
        for (var i = 0; i < 5; i++) {            // one kernel row at a time: five products a pass
          var s = (y + i) * pw, e0 = k[5 * i], e1 = k[5 * i + 1], e2 = k[5 * i + 2], e3 = k[5 * i + 3], e4 = k[5 * i + 4];
          for (x = 0; x < w; x++) {
            out[o + x] += e0 * padded[s + x] + e1 * padded[s + x + 1] + e2 * padded[s + x + 2]
                        + e3 * padded[s + x + 3] + e4 * padded[s + x + 4];
          }
        }
      }
      return out;
    }
    out.fill(0);                                 // any other odd size (1×1, 7×7, ...): tap by tap
    for (var ii = 0; ii < f; ii++) {
      for (var j = 0; j < f; j++) {
        var kij = k[ii * f + j];
        for (y = 0; y < h; y++) {
          var s0 = (y + ii) * pw + j;
          o = y * w;
          for (x = 0; x < w; x++) { out[o + x] += kij * padded[s0 + x]; }
        }
      }
    }
    return out;
  }

  /** cnnviz.kernels.for_display over one or three planes into RGBA pixels (a Uint8ClampedArray, which
   *  clips to 0..255 and rounds half to even, as numpy does). */
  function toPixels(planes, n, mode, rgba) {
    var lo = Infinity, hi = -Infinity, c, i, v, p, scale = 0;
    if (mode === "normalise") {
      for (c = 0; c < planes.length; c++) {
        p = planes[c];
        for (i = 0; i < n; i++) { v = p[i]; if (v < lo) { lo = v; } if (v > hi) { hi = v; } }
      }
      scale = hi > lo ? Math.fround(255 / (hi - lo)) : 0;
    }
    var gray = planes.length === 1;
    for (c = 0; c < (gray ? 1 : 3); c++) {
      p = planes[c];
      var at = c;
      if (mode === "clip") {
        if (gray) { for (i = 0; i < n; i++) { v = p[i]; rgba[4 * i] = v; rgba[4 * i + 1] = v; rgba[4 * i + 2] = v; } }
        else { for (i = 0; i < n; i++) { rgba[4 * i + at] = p[i]; } }
      } else if (mode === "abs") {
        if (gray) { for (i = 0; i < n; i++) { v = Math.abs(p[i]); rgba[4 * i] = v; rgba[4 * i + 1] = v; rgba[4 * i + 2] = v; } }
        else { for (i = 0; i < n; i++) { rgba[4 * i + at] = Math.abs(p[i]); } }
      } else {                                   // (v − lo) · (255 / (hi − lo)) in float32, as numpy does
        for (i = 0; i < n; i++) {
          v = Math.fround(Math.fround(p[i] - lo) * scale);
          if (gray) { rgba[4 * i] = v; rgba[4 * i + 1] = v; rgba[4 * i + 2] = v; } else { rgba[4 * i + at] = v; }
        }
      }
    }
    for (i = 3; i < 4 * n; i += 4) { rgba[i] = 255; }
    return rgba;
  }

  /** A worker's loop: it keeps its band of each padded plane and correlates them with each new kernel.
   *  (Its source is this function's, with separate and correlate: see makePool.) */
  function workerMain() {
    var bands = null;
    self.onmessage = function (event) {
      var m = event.data;
      if (m.type === "bands") { bands = m; return; }
      if (!bands || bands.key !== m.key) { self.postMessage({ seq: m.seq, index: m.index, error: "no band" }); return; }
      var outs = bands.planes.map(function (p) {
        return correlate(p, bands.h, bands.w, m.k, m.f, new Float32Array(bands.h * bands.w));
      });
      self.postMessage({ seq: m.seq, index: m.index, outs: outs }, outs.map(function (o) { return o.buffer; }));
    };
  }

  // ------------------------------------------------------------------ correlate in WebAssembly SIMD

  // The module of cnnviz-live-simd.wat (beside this file): correlate's 3×3, 5×5 and separable 5×5 loops, four
  // output pixels at a time in f32x4. Assembled and written here by tools/build_live_wasm.py (the tests check
  // it is that file's); compiled from these bytes, never fetched.
  var SIMD_WASM = "AGFzbQEAAAABEgJgBX9/f39/AGAGf39/f39/AAIPAQNlbnYGbWVtb3J5AgABAwQDAAABBxoDBmRlbnNlMwAABmRlbnNlNQABBHNlcDUAAgqjCwPDAgIJewV/IAQqAgD9EyEFIAQqAgT9EyEGIAQqAgj9EyEHIAQqAgz9EyEIIAQqAhD9EyEJIAQqAhT9EyEKIAQqAhj9EyELIAQqAhz9EyEMIAQqAiD9EyENIANBAmpBAnQhDgNAIAAgEiAObGohDyABIBIgA2xBAnRqIRAgECADQQJ0aiERA0AgECAFIA/9AAQA/eYBIAYgD/0ABAT95gH95AEgByAP/QAECP3mAf3kASAIIA8gDmr9AAQA/eYBIAkgDyAOav0ABAT95gH95AEgCiAPIA5q/QAECP3mAf3kAf3kASALIA8gDkEBdGr9AAQA/eYBIAwgDyAOQQF0av0ABAT95gH95AEgDSAPIA5BAXRq/QAECP3mAf3kAf3kAf0LBAAgD0EQaiEPIBBBEGoiECARSQ0ACyASQQFqIhIgAkkNAAsLzAUCHnsGfyAEKgIA/RMhBSAEKgIE/RMhBiAEKgII/RMhByAEKgIM/RMhCCAEKgIQ/RMhCSAEKgIU/RMhCiAEKgIY/RMhCyAEKgIc/RMhDCAEKgIg/RMhDSAEKgIk/RMhDiAEKgIo/RMhDyAEKgIs/RMhECAEKgIw/RMhESAEKgI0/RMhEiAEKgI4/RMhEyAEKgI8/RMhFCAEKgJA/RMhFSAEKgJE/RMhFiAEKgJI/RMhFyAEKgJM/RMhGCAEKgJQ/RMhGSAEKgJU/RMhGiAEKgJY/RMhGyAEKgJc/RMhHCAEKgJg/RMhHSADQQRqQQJ0ISMDQCAAICggI2xqISQgASAoIANsQQJ0aiEmICYgA0ECdGohJwNAICQhJSAFICX9AAQA/eYBIAYgJf0ABAT95gH95AEgByAl/QAECP3mAf3kASAIICX9AAQM/eYB/eQBIAkgJf0ABBD95gH95AEhHiAlICNqISUgCiAl/QAEAP3mASALICX9AAQE/eYB/eQBIAwgJf0ABAj95gH95AEgDSAl/QAEDP3mAf3kASAOICX9AAQQ/eYB/eQBIR8gJSAjaiElIA8gJf0ABAD95gEgECAl/QAEBP3mAf3kASARICX9AAQI/eYB/eQBIBIgJf0ABAz95gH95AEgEyAl/QAEEP3mAf3kASEgICUgI2ohJSAUICX9AAQA/eYBIBUgJf0ABAT95gH95AEgFiAl/QAECP3mAf3kASAXICX9AAQM/eYB/eQBIBggJf0ABBD95gH95AEhISAlICNqISUgGSAl/QAEAP3mASAaICX9AAQE/eYB/eQBIBsgJf0ABAj95gH95AEgHCAl/QAEDP3mAf3kASAdICX9AAQQ/eYB/eQBISIgJiAeIB/95AEgIP3kASAh/eQBICL95AH9CwQAICRBEGohJCAmQRBqIiYgJ0kNAAsgKEEBaiIoIAJJDQALC40DAgV7Bn8gBSoCAP0TIQYgBSoCBP0TIQcgBSoCCP0TIQggBSoCDP0TIQkgBSoCEP0TIQogBEEEakECdCELIANBBGohEANAIAAgDyALbGohDCACIA8gBGxBAnRqIQ0gDSAEQQJ0aiEOA0AgDSAGIAz9AAQA/eYBIAcgDP0ABAT95gH95AEgCCAM/QAECP3mAf3kASAJIAz9AAQM/eYB/eQBIAogDP0ABBD95gH95AH9CwQAIAxBEGohDCANQRBqIg0gDkkNAAsgD0EBaiIPIBBJDQALIAUqAhT9EyEGIAUqAhj9EyEHIAUqAhz9EyEIIAUqAiD9EyEJIAUqAiT9EyEKIARBAnQhCyACIQwgASENIAEgAyALbGohDgNAIA0gBiAM/QAEAP3mASAHIAwgC2r9AAQA/eYB/eQBIAggDCALQQF0av0ABAD95gH95AEgCSAMIAtBA2xq/QAEAP3mAf3kASAKIAwgC0ECdGr9AAQA/eYB/eQB/QsEACAMQRBqIQwgDUEQaiINIA5JDQALCw==";
  var simdModule;                               // undefined: not tried yet; null: this browser cannot run it

  /** The compiled module, or null where WebAssembly or its SIMD is unavailable (validate refuses the bytes). */
  function simdModuleOrNull() {
    if (simdModule !== undefined) { return simdModule; }
    simdModule = null;
    try {
      if (typeof WebAssembly === "object" && typeof atob === "function") {
        var text = atob(SIMD_WASM), bytes = new Uint8Array(text.length);
        for (var i = 0; i < text.length; i++) { bytes[i] = text.charCodeAt(i); }
        // compiled synchronously: Chrome allows that on the page's thread for modules under 4 kB (this one is 1.5 kB)
        if (WebAssembly.validate(bytes)) { simdModule = new WebAssembly.Module(bytes); }
      }
    } catch (err) {
      simdModule = null;
    }
    return simdModule;
  }

  /** correlate for 3×3 and 5×5 kernels in WebAssembly SIMD, or null where it cannot run. The padded planes stay
   *  in its memory (load, when the photo, colour or kernel size changes); each kernel only writes its weights
   *  there (run), and the outputs are read through Float32Arrays on that memory, made again after it grows. */
  function makeSimdEngine() {
    var module = simdModuleOrNull();
    if (!module) { return null; }
    var memory = new WebAssembly.Memory({ initial: 1 });
    var fns = new WebAssembly.Instance(module, { env: { memory: memory } }).exports;
    var KERNEL = 0, at = 0, layout = null, views = null;
    function take(floats) {                     // 16 spare bytes after each buffer: the last vector's overrun
      var start = at;
      at += (4 * floats + 16 + 15) & ~15;
      return start;
    }
    var engine = {
      key: null,
      /** Copy the padded planes (h + 2r rows of w + 2r floats each) into the module's memory. */
      load: function (key, padded, h, w, r) {
        var ph = h + 2 * r, pw = w + 2 * r;
        at = 256;                               // the kernel's weights at 0
        layout = { h: h, w: w, r: r, pads: padded.map(function () { return take(ph * pw); }) };
        layout.outs = padded.map(function () { return take(h * w); });
        layout.tmp = take((h + 4) * w);
        var missing = at - memory.buffer.byteLength;
        if (missing > 0) { memory.grow(Math.ceil(missing / 65536)); }
        new Uint8Array(memory.buffer, 0, at).fill(0);
        padded.forEach(function (p, c) { new Float32Array(memory.buffer, layout.pads[c], ph * pw).set(p); });
        views = null; engine.key = key;
      },
      /** Correlate every loaded plane with the f×f kernel k (f = 2r + 1 of the planes loaded; sep: separate(k, 5)
       *  when it is not null): the outputs, h × w Float32Arrays on the module's memory (valid until the next load). */
      run: function (k, f, sep) {
        var h = layout.h, w = layout.w, i;
        if (f !== 2 * layout.r + 1 || (f !== 3 && f !== 5)) { throw new Error("no WebAssembly loop for this kernel"); }
        if (!views || views.k.buffer !== memory.buffer) {
          views = { k: new Float32Array(memory.buffer, KERNEL, 32),
                    outs: layout.outs.map(function (o) { return new Float32Array(memory.buffer, o, h * w); }) };
        }
        if (sep) {
          for (i = 0; i < 5; i++) { views.k[i] = sep.v[i]; views.k[5 + i] = sep.u[i]; }
          layout.pads.forEach(function (p, c) { fns.sep5(p, layout.outs[c], layout.tmp, h, w, KERNEL); });
        } else {
          views.k.set(k);
          var loop = f === 3 ? fns.dense3 : fns.dense5;
          layout.pads.forEach(function (p, c) { loop(p, layout.outs[c], h, w, KERNEL); });
        }
        return views.outs;
      }
    };
    return engine;
  }

  // ------------------------------------------------------------------ the kernel editor

  var MODE_LABELS = { clip: "clip to 0\u2013255", abs: "absolute value", normalise: "stretch min\u2013max" };

  function decodePhoto(uri, done) {
    var img = new Image();
    img.onload = function () {
      var canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
      var ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      done(ctx.getImageData(0, 0, canvas.width, canvas.height));
    };
    img.onerror = function () { done(null); };
    img.src = uri;
  }

  /** Python's str(int(v)) for whole numbers, else f"{v:.4g}" (KernelEditor._fill_cells). Both languages round the
   *  double's exact value, but a tie (…5 exactly after the fourth digit, as in 1/64 = 0.015625) goes to the even
   *  digit in Python and up in JavaScript's toPrecision: that case is rounded here. */
  function format4g(v) {
    if (Number.isInteger(v)) { return BigInt(v).toString(); }            // exact, as Python's int
    var exact = Math.abs(v).toExponential(99).split("e"), all = exact[0].replace(".", ""), digits, e;
    if (all[4] === "5" && /^0*$/.test(all.slice(5)) && Number(all[3]) % 2 === 0) {
      digits = all.slice(0, 4); e = Number(exact[1]);
    } else {
      var rounded = Math.abs(v).toExponential(3).split("e");
      digits = rounded[0].replace(".", ""); e = Number(rounded[1]);
    }
    var sign = v < 0 ? "-" : "", text;
    if (e < -4 || e >= 4) {
      var tail = digits.slice(1).replace(/0+$/, "");
      text = digits[0] + (tail ? "." + tail : "") + "e" + (e < 0 ? "-" : "+") + (Math.abs(e) < 10 ? "0" : "") + Math.abs(e);
    } else if (e >= 0) {
      var frac = digits.slice(e + 1).replace(/0+$/, "");
      text = digits.slice(0, e + 1) + (frac ? "." + frac : "");
    } else {
      text = "0." + "0".repeat(-e - 1) + digits.replace(/0+$/, "");
    }
    return sign + text;
  }

  function mountKernelEditor(container, data) {
    var state = {
      photo: data.image, f: data.kernel.length, mode: data.mode, colour: data.color,
      kernel: [].concat.apply([], data.kernel), written: {}, planes: {}, padded: {}, timings: []
    };
    var title = el("div", { class: "cnnviz-live-title", text: "Kernel editor: output = kernel \u22c6 input (cross-correlation)" });
    var photoMenu = el("select", { "aria-label": "photo" });
    Object.keys(data.photos).forEach(function (name) { photoMenu.appendChild(el("option", { value: name, text: name })); });
    var presetMenu = el("select", { "aria-label": "preset" }, [el("option", { value: "", text: "(custom)" })]);
    Object.keys(data.presets).forEach(function (name) { presetMenu.appendChild(el("option", { value: name, text: name })); });
    var sizeMenu = el("select", { "aria-label": "kernel size" },
                      [el("option", { value: "3", text: "3\u00d73" }), el("option", { value: "5", text: "5\u00d75" })]);
    var colourMenu = el("select", { "aria-label": "colour" },
                        [el("option", { value: "gray", text: "grayscale" }), el("option", { value: "colour", text: "colour" })]);
    var modeMenu = el("select", { "aria-label": "show" });
    data.modes.forEach(function (m) { modeMenu.appendChild(el("option", { value: m, text: MODE_LABELS[m] })); });
    var grid = el("div", { class: "cnnviz-live-grid" });
    var message = el("div", { class: "cnnviz-live-message", "aria-live": "polite" });
    var explain = el("div", { class: "cnnviz-live-explain" });
    var inCanvas = el("canvas", { class: "cnnviz-live-input", role: "img", "aria-label": "input photo" });
    var outCanvas = el("canvas", { class: "cnnviz-live-output", role: "img", "aria-label": "filtered output" });
    var label = function (text, control) { return el("label", {}, [el("span", { text: text + " " }), control]); };
    var left = el("div", { class: "cnnviz-live-left" }, [
      el("div", {}, [el("b", { text: "kernel" }), document.createTextNode(" (numbers, or fractions like 1/9)")]),
      label("size", sizeMenu), grid, message, label("show", modeMenu), label("filter", colourMenu), explain]);
    var figure = function (text, canvas) { return el("div", { class: "cnnviz-live-view" }, [el("b", { text: text }), canvas]); };
    container.textContent = "";
    container.appendChild(el("div", { class: "cnnviz-live cnnviz-live-ke" }, [
      title, el("div", { class: "cnnviz-live-row" }, [label("photo", photoMenu), label("preset", presetMenu)]),
      el("div", { class: "cnnviz-live-body" }, [left, figure("input", inCanvas), figure("output", outCanvas)])]));
    photoMenu.value = state.photo; sizeMenu.value = String(state.f); modeMenu.value = state.mode;
    colourMenu.value = state.colour ? "colour" : "gray";

    var cells = [];
    function fillCells(values, texts) {
      var f = state.f;
      grid.textContent = "";
      grid.style.gridTemplateColumns = "repeat(" + f + ", " + (f === 3 ? "4.2em" : "3.2em") + ")";
      cells = []; state.written = {};
      for (var i = 0; i < f * f; i++) {
        var text = texts ? texts[i] : format4g(values[i]);
        var cell = el("input", { type: "text", "aria-label": "row " + (Math.floor(i / f) + 1) + ", column " + (i % f + 1), spellcheck: "false" });
        cell.value = text;
        state.written[i] = [text, values[i]];      // an untouched "0.1111" still means exactly 1/9
        cell.addEventListener("input", onCell);
        grid.appendChild(cell); cells.push(cell);
      }
    }

    function readCells() {
      var f = state.f, k = new Float64Array(f * f), problems = [];
      for (var i = 0; i < f * f; i++) {
        var text = cells[i].value, w = state.written[i];
        if (w && w[0] === text) { k[i] = w[1]; cells[i].classList.remove("cnnviz-live-bad"); continue; }
        var parsed = parseEntry(text);
        cells[i].classList.toggle("cnnviz-live-bad", !!parsed.error);
        if (parsed.error) { problems.push("Row " + (Math.floor(i / f) + 1) + ", column " + (i % f + 1) + ": " + parsed.error); }
        else { k[i] = parsed.value; }
      }
      if (problems.length) {
        return { error: problems.slice(0, 3).join(" ") + (problems.length > 3 ? " \u2026" : "") +
                 " The output still shows the last valid kernel." };
      }
      return { kernel: k };
    }

    function matchPreset(k, f) {
      var names = Object.keys(data.presets);
      for (var n = 0; n < names.length; n++) {
        var p = data.presets[names[n]].values;
        if (p.length !== f * f) { continue; }
        var same = true;
        for (var i = 0; i < f * f && same; i++) { same = Math.abs(k[i] - p[i]) <= 1e-8 + 1e-5 * Math.abs(p[i]); }
        if (same) { return names[n]; }
      }
      return "";
    }

    function planes() {
      var key = state.photo + (state.colour ? ":rgb" : ":gray");
      return state.planes[key] || null;
    }

    // Large photos with large kernels are split across Web Workers (computing with correlate), a band of rows each,
    // where the browser has no WebAssembly SIMD (with it, the page's own thread filters a 512×512 colour photo with
    // any 5×5 kernel in a few ms) and the machine has cores to spare (four or more: on two, the page's own thread
    // was as fast, measured); everything else, and any browser that refuses workers, computes on the page's own
    // thread. window.cnnvizLiveWorkers = "always" forces them (for tests).
    var pool = null, poolFailed = false, running = null, queued = null;
    var WORK_FOR_WORKERS = 8e6;                 // multiply-adds: about 6 ms on one core of a slow laptop

    function makePool() {
      if (pool || poolFailed) { return pool; }
      try {
        var source = "var separate = " + separate.toString() + ";\nvar correlate = " + correlate.toString() +
                     ";\n(" + workerMain.toString() + ")();";
        var url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
        var count = Math.max(2, Math.min(4, (navigator.hardwareConcurrency || 2) - 1));
        pool = { workers: [], key: null, bands: [], url: url };
        for (var i = 0; i < count; i++) {
          var worker = new Worker(url);
          worker.onmessage = onBand;
          worker.onerror = function () { dropPool(); render(); };
          pool.workers.push(worker);
        }
      } catch (err) {
        poolFailed = true; pool = null;
      }
      return pool;
    }

    /** Give up on workers (an error, a refused band): end them, and compute on the page from now on. */
    function dropPool() {
      if (pool) {
        pool.workers.forEach(function (worker) { worker.terminate(); });
        URL.revokeObjectURL(pool.url);
      }
      pool = null; poolFailed = true; running = null; queued = null;
      delete container.dataset.busy;
    }

    function sendBands(padKey, src, r) {        // each worker keeps its band of the padded planes (2r rows overlap)
      var count = pool.workers.length, pw = src.w + 2 * r;
      pool.key = padKey; pool.bands = [];
      for (var i = 0; i < count; i++) {
        var y0 = Math.floor(src.h * i / count), y1 = Math.floor(src.h * (i + 1) / count);
        var planesI = state.padded[padKey].map(function (p) { return p.slice(y0 * pw, (y1 + 2 * r) * pw); });
        pool.bands.push([y0, y1]);
        pool.workers[i].postMessage({ type: "bands", key: padKey, planes: planesI, h: y1 - y0, w: src.w });
      }
    }

    function onBand(event) {
      var m = event.data, job = running;
      if (!job || m.seq !== job.seq) { return; }
      if (m.error) { dropPool(); render(); return; }
      var band = pool.bands[m.index];
      m.outs.forEach(function (o, c) { job.out[c].set(o, band[0] * job.w); });
      if (++job.done < pool.workers.length) { return; }
      running = null;
      if (!queued || queued.padKey === job.padKey) { present(job); }    // not a picture of the photo just left
      if (queued) { var next = queued; queued = null; startJob(next); }
      else { delete container.dataset.busy; }
    }

    function startJob(job) {
      var src = planes(), r = (job.f - 1) >> 1;
      if (!src || src !== job.src) { render(); return; }
      if (pool.key !== job.padKey) { sendBands(job.padKey, src, r); }
      running = job; job.done = 0; job.threads = pool.workers.length;
      container.dataset.busy = "computing";
      pool.workers.forEach(function (worker, index) {
        worker.postMessage({ type: "run", seq: job.seq, index: index, key: job.padKey, k: job.k, f: job.f });
      });
    }

    // 3×3 and 5×5 kernels are computed by WebAssembly SIMD (makeSimdEngine) where the browser runs it, else by
    // correlate; window.cnnvizLiveWasm = "never" forces correlate (for tests and comparisons).
    var simd = null, simdFailed = false;
    function simdEngine(f) {
      if (window.cnnvizLiveWasm === "never" || simdFailed || (f !== 3 && f !== 5)) { return null; }
      if (!simd) {
        try { simd = makeSimdEngine(); } catch (err) { simd = null; }
        if (!simd) { simdFailed = true; }
      }
      return simd;
    }

    var seq = 0;
    function render() {
      var t0 = performance.now();
      var src = planes();
      if (!src) { return; }
      var f = state.f, r = (f - 1) >> 1, n = src.w * src.h;
      var padKey = state.photo + (state.colour ? ":rgb:" : ":gray:") + r;
      if (!state.padded[padKey]) {
        state.padded = {};                       // one photo's padded planes at a time
        state.padded[padKey] = src.planes.map(function (p) { return padPlane(p, src.h, src.w, r); });
      }
      if (!state.out || state.out.length !== src.planes.length || state.out[0].length !== n) {
        state.out = src.planes.map(function () { return new Float32Array(n); });
      }
      var k32 = Float64Array.from(state.kernel);   // separable or not is decided on the exact numbers
      var sep = f === 5 ? separate(k32, 5) : null, taps = sep ? 10 : f * f;
      var job = { seq: ++seq, t0: t0, src: src, f: f, k: k32, padKey: padKey, out: state.out, w: src.w,
                  name: presetMenu.value, kernel: state.kernel.slice() };
      var engine = simdEngine(f);
      var spare = !engine && (navigator.hardwareConcurrency || 2) >= 4 && n * src.planes.length * taps >= WORK_FOR_WORKERS;
      if ((spare || window.cnnvizLiveWorkers === "always") && makePool()) {
        if (running) { queued = job; container.dataset.busy = "computing"; return; }   // the newest waits, older ones drop
        startJob(job);
        return;
      }
      queued = null;
      if (running) { running = null; delete container.dataset.busy; }   // a smaller job overtakes the workers
      if (engine) {
        try {
          if (engine.key !== padKey) { engine.load(padKey, state.padded[padKey], src.h, src.w, r); }
          job.out = engine.run(k32, f, sep);
          job.engine = "WebAssembly SIMD";
        } catch (err) {                          // (memory refused to grow, say): JavaScript from now on
          if (window.console) { console.warn("cnnviz: WebAssembly SIMD failed, computing in JavaScript:", err); }
          simd = null; simdFailed = true; engine = null; job.out = state.out;
        }
      }
      if (!engine) {
        state.padded[padKey].forEach(function (p, c) { correlate(p, src.h, src.w, k32, f, state.out[c]); });
        job.engine = "JavaScript";
      }
      present(job);
    }

    function present(job) {
      var src = job.src, n = src.w * src.h;
      if (outCanvas.width !== src.w || outCanvas.height !== src.h) { outCanvas.width = src.w; outCanvas.height = src.h; }
      var ctx = outCanvas.getContext("2d");
      var image = state.outImage && state.outImage.width === src.w && state.outImage.height === src.h
        ? state.outImage : (state.outImage = ctx.createImageData(src.w, src.h));
      toPixels(job.out, n, state.mode, image.data);
      ctx.putImageData(image, 0, 0);
      var ms = performance.now() - job.t0;
      state.timings.push(ms);
      var total = 0;
      for (var i = 0; i < job.kernel.length; i++) { total += job.kernel[i]; }
      explain.textContent = "";
      explain.appendChild(el("b", { text: job.name || "(custom)" }));
      explain.appendChild(document.createTextNode(": " + (job.name ? data.presets[job.name].description : "your own kernel.")));
      explain.appendChild(el("br"));
      explain.appendChild(document.createTextNode("weights sum to " + (+total.toPrecision(3)) +
        (Math.abs(total) < 1e-9 ? " (flat regions become 0)" : "")));
      explain.appendChild(el("br"));
      explain.appendChild(document.createTextNode(src.w + "\u00d7" + src.h + " px, " + ms.toFixed(1) + " ms in this page" +
        (job.threads ? " (" + job.threads + " threads)" : " (" + job.engine + ")")));
      container.dataset.rendered = String(state.timings.length);
    }

    function showInput() {
      var src = planes();
      if (!src) { return; }
      inCanvas.width = src.w; inCanvas.height = src.h;
      var ctx = inCanvas.getContext("2d"), image = ctx.createImageData(src.w, src.h);
      toPixels(src.planes, src.w * src.h, "clip", image.data);
      ctx.putImageData(image, 0, 0);
    }

    function load(then) {
      if (planes()) { then(); return; }
      var photo = data.photos[state.photo], colour = state.colour;
      container.dataset.busy = "decoding";      // tests and scripts wait for the new photo's output
      decodePhoto(colour ? photo.rgb : photo.gray, function (pixels) {
        delete container.dataset.busy;
        if (!pixels) { message.textContent = "The photo could not be decoded in this browser."; return; }
        var n = pixels.width * pixels.height, count = colour ? 3 : 1, out = [];
        for (var c = 0; c < count; c++) {
          var p = new Float32Array(n);
          for (var i = 0; i < n; i++) { p[i] = pixels.data[4 * i + c]; }
          out.push(p);
        }
        state.planes[photo.name + (colour ? ":rgb" : ":gray")] = { w: pixels.width, h: pixels.height, planes: out };
        then();
      });
    }

    function refresh() { load(function () { showInput(); render(); }); }

    function onCell() {
      var read = readCells();
      if (read.error) { message.textContent = read.error; return; }
      message.textContent = "";
      state.kernel = Array.prototype.slice.call(read.kernel);
      presetMenu.value = matchPreset(read.kernel, state.f);
      render();
    }

    presetMenu.addEventListener("change", function () {
      var p = data.presets[presetMenu.value];
      if (!p) { return; }
      state.f = Math.round(Math.sqrt(p.values.length)); sizeMenu.value = String(state.f);
      state.kernel = p.values.slice();
      fillCells(p.values, p.texts);
      message.textContent = "";
      render();
    });
    sizeMenu.addEventListener("change", function () {   // KernelEditor._on_size: the last valid kernel, centred
      var fOld = state.f, fNew = Number(sizeMenu.value), k = [], i, j;
      if (fNew === fOld) { return; }
      for (i = 0; i < fNew; i++) {
        for (j = 0; j < fNew; j++) {
          var oi = fNew > fOld ? i - 1 : i + 1, oj = fNew > fOld ? j - 1 : j + 1;
          var inside = oi >= 0 && oj >= 0 && oi < fOld && oj < fOld;
          k.push(inside ? state.kernel[oi * fOld + oj] : 0);
        }
      }
      state.f = fNew;
      fillCells(k, null);
      onCell();
    });
    photoMenu.addEventListener("change", function () { state.photo = photoMenu.value; refresh(); });
    colourMenu.addEventListener("change", function () { state.colour = colourMenu.value === "colour"; refresh(); });
    modeMenu.addEventListener("change", function () { state.mode = modeMenu.value; render(); });

    var start = data.presets[data.start];
    fillCells(state.kernel, start ? start.texts : null);
    presetMenu.value = matchPreset(state.kernel, state.f);
    refresh();
    container.cnnvizLive = {
      state: state, render: render, cells: function () { return cells; }, timings: state.timings,
      outputPixels: function () {
        return outCanvas.getContext("2d").getImageData(0, 0, outCanvas.width, outCanvas.height);
      }
    };
  }

  // ------------------------------------------------------------------ cnnviz.figures.arithmetic.conv_arithmetic_text

  /** cnnviz.layers' checks and cnnviz.figures.arithmetic.conv_arithmetic_text: {text, p, hOut, params, macs}
   *  or {error: the same sentence}. p is a number, "valid" or "same"; the others whole numbers. */
  function convArithmetic(n, f, p, s, d, cIn, cOut) {
    var pInt = p;
    if (p === "valid") { pInt = 0; }
    if (p === "same") {
      if (s !== 1) {
        return { error: "padding='same' keeps the size only with stride 1 (as in PyTorch), got s = " + s +
                 "; give the padding as a number instead." };
      }
      var extra = d * (f - 1);
      if (extra % 2) {
        return { error: "'same' padding needs p = d(f-1)/2 = " + d + "\u00b7" + (f - 1) + "/2 = " + (extra / 2) +
                 " to be a whole number; with f = " + f + " it is not. Use an odd kernel size (or an even dilation)." };
      }
      pInt = extra / 2;
    }
    var span = d * (f - 1) + 1;
    if (span > n + 2 * pInt) {
      var what = d === 1 ? "f = " + f : "the dilated kernel d(f-1)+1 = " + span;
      return { error: "The kernel does not fit: " + what + " > n + 2p = " + n + " + 2\u00b7" + pInt + " = " + (n + 2 * pInt) +
               ", so floor((n + 2p - f)/s) + 1 = floor((" + (n + 2 * pInt) + " - " + span + ")/" + s + ") + 1 = " +
               (Math.floor((n + 2 * pInt - span) / s) + 1) + " output positions. Use a smaller kernel or more padding." };
    }
    var numerator = n + 2 * pInt - d * (f - 1) - 1;
    var hOut = Math.floor(numerator / s) + 1;
    var params = cOut * (f * f * cIn + 1), macs = hOut * hOut * cOut * f * f * cIn;
    var lines = [];
    if (p === "same") { lines.push("padding 'same': p = d(f\u22121)/2 = " + d + "\u00b7(" + f + "\u22121)/2 = <b>" + pInt + "</b>"); }
    else if (p === "valid") { lines.push("padding 'valid': p = <b>0</b>"); }
    lines.push("<b>output size</b> = floor((n + 2p \u2212 d(f\u22121) \u2212 1)/s) + 1 = floor((" + n + " + 2\u00b7" + pInt +
               " \u2212 " + d + "\u00b7(" + f + "\u22121) \u2212 1)/" + s + ") + 1 = floor(" + numerator + "/" + s + ") + 1 = <b>" + hOut + "</b>");
    lines.push("<b>output volume</b> C_out \u00d7 H_out \u00d7 W_out = <b>" + cOut + " \u00d7 " + hOut + " \u00d7 " + hOut +
               "</b> (input C_in \u00d7 n \u00d7 n = " + cIn + " \u00d7 " + n + " \u00d7 " + n + ")");
    lines.push("<b>parameters</b> C_out\u00b7(f\u00b7f\u00b7C_in + 1) = " + cOut + "\u00b7(" + f + "\u00b7" + f + "\u00b7" + cIn +
               " + 1) = <b>" + thousands(params) + "</b>");
    lines.push("<b>multiply\u2013accumulates (MACs)</b> H_out\u00b7W_out\u00b7C_out\u00b7f\u00b7f\u00b7C_in = " + hOut + "\u00b7" + hOut +
               "\u00b7" + cOut + "\u00b7" + f + "\u00b7" + f + "\u00b7" + cIn + " = <b>" + thousands(macs) + "</b>");
    return { text: lines.join("<br>"), p: pInt, hOut: hOut, params: params, macs: macs };
  }

  // ------------------------------------------------------------------ the convolution explorer

  var NAMES = { n: "n (input)", f: "f (kernel)", p: "p (padding)", s: "s (stride)", d: "d (dilation)", c_in: "C_in", c_out: "C_out" };
  var KEEP = " The picture shows the last setting that worked.";

  function mountConvExplorer(container, data) {
    var limits = data.limits, order = ["n", "f", "p", "s", "d", "c_in", "c_out"];
    var values = {}, sliders = {}, outputs = {}, shown = null, position = 0, timer = null, timings = [];
    var controls = el("div", { class: "cnnviz-live-sliders" });
    order.forEach(function (name) {
      values[name] = typeof data.start[name] === "number" ? data.start[name] : 0;
      var slider = el("input", { type: "range", min: limits[name][0], max: limits[name][1], step: 1, "aria-label": NAMES[name] });
      slider.value = values[name];
      var out = el("output", { text: String(values[name]) });
      slider.addEventListener("input", function () {
        values[name] = Number(slider.value); out.textContent = slider.value;
        if (name === "p") { modeMenu.value = "number"; }
        update();
      });
      sliders[name] = slider; outputs[name] = out;
      controls.appendChild(el("label", {}, [el("span", { text: NAMES[name] }), slider, out]));
    });
    var modeMenu = el("select", { "aria-label": "padding mode" },
                      [el("option", { value: "number", text: "p from its slider" }),
                       el("option", { value: "valid", text: "valid (p = 0)" }),
                       el("option", { value: "same", text: "same (p = d(f\u22121)/2)" })]);
    modeMenu.value = typeof data.start.p === "string" ? data.start.p : "number";
    modeMenu.addEventListener("change", update);
    controls.appendChild(el("label", {}, [el("span", { text: "padding" }), modeMenu]));
    var formula = el("div", { class: "cnnviz-live-formula" });
    var message = el("div", { class: "cnnviz-live-message", "aria-live": "polite" });
    var canvas = el("canvas", { class: "cnnviz-live-conv", role: "img", "aria-label": "the kernel sliding over the padded input" });
    var play = el("button", { type: "button", text: "\u25b6 play" });
    var scrub = el("input", { type: "range", min: 0, max: 0, step: 1, value: 0, "aria-label": "output position" });
    var where = el("span", { class: "cnnviz-live-where", "aria-live": "polite" });
    var root = el("div", { class: "cnnviz-live cnnviz-live-ce", tabindex: "0" }, [
      el("div", { class: "cnnviz-live-title", text: "Convolution explorer: padding, stride, dilation and channels" }),
      el("div", { class: "cnnviz-live-body" }, [controls, el("div", { class: "cnnviz-live-view" }, [
        canvas, el("div", { class: "cnnviz-live-row" }, [play, scrub, where])])]),
      message, formula]);
    container.textContent = "";
    container.appendChild(root);

    function settings() {
      var p = modeMenu.value === "number" ? values.p : modeMenu.value;
      return { n: values.n, f: values.f, p: p, s: values.s, d: values.d, c_in: values.c_in, c_out: values.c_out };
    }

    function syncPadding() {               // ConvExplorer._sync_padding: in "valid"/"same" p follows f and d
      var mode = modeMenu.value;
      if (mode === "number") { return; }
      var extra = values.d * (values.f - 1);
      if (mode === "same" && extra % 2) { return; }
      var target = mode === "valid" ? 0 : extra / 2;
      if (target <= limits.p[1]) { values.p = target; sliders.p.value = target; outputs.p.textContent = String(target); }
    }

    function update() {
      var t0 = performance.now();
      syncPadding();
      var kw = settings();
      var result = convArithmetic(kw.n, kw.f, kw.p, kw.s, kw.d, kw.c_in, kw.c_out);
      if (result.error) {
        message.textContent = result.error + KEEP;
      } else {
        message.textContent = "";
        shown = { kw: kw, r: result };
        renderMarkup(formula, result.text);
        var last = result.hOut * result.hOut - 1;
        scrub.max = last;
        if (position > last) { position = last; }
        scrub.value = position;
        draw();
      }
      timings.push(performance.now() - t0);
      container.dataset.updated = String(timings.length);
    }

    // the colours of cnnviz.figures.arithmetic's frames (its _COLOURS), so both explorers read alike
    var C = { grid: "#8c8c8c", edge: "#282828", pad: "#e4e4e4", tap: "#5696de", tapPad: "#afc8e8", window: "#103e8c",
              done: "#96d6bc", current: "#5696de", back: "#eeeeee", backGrid: "#aaaaaa" };

    function draw() {
      if (!shown) { return; }
      var kw = shown.kw, r = shown.r, p = r.p, side = kw.n + 2 * p, hOut = r.hOut;
      var stackIn = Math.min(kw.c_in, 3) - 1, stackOut = Math.min(kw.c_out, 3) - 1;
      var cell = Math.max(8, Math.min(34, Math.floor(400 / (side + hOut + 3 + stackIn + stackOut))));
      var offset = Math.round(cell * 0.45), gap = 3 * cell, font = 14;
      var width = 12 + side * cell + offset * stackIn + gap + hOut * cell + offset * stackOut + 12;
      var top = 28 + offset * Math.max(stackIn, stackOut);
      var height = top + Math.max(side, hOut) * cell + 10;
      width = Math.max(width, 12 + 2 * 15 * font * 0.6 + gap);
      var ratio = root.ownerDocument.defaultView.devicePixelRatio || 1;
      canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
      canvas.style.width = width + "px"; canvas.style.maxWidth = "100%";
      var ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, width, height);   // light in a dark theme too
      var oy = Math.floor(position / hOut), ox = position % hOut;
      function gridAt(x0, y0, count, fill, lineColour) {
        for (var i = 0; i < count; i++) {
          for (var j = 0; j < count; j++) {
            ctx.fillStyle = fill(i, j); ctx.fillRect(x0 + j * cell, y0 + i * cell, cell, cell);
            ctx.strokeStyle = lineColour; ctx.strokeRect(x0 + j * cell + 0.5, y0 + i * cell + 0.5, cell - 1, cell - 1);
          }
        }
      }
      // the input channels behind the front one, then the front one: padding, the window's taps (dilated)
      for (var b = stackIn; b >= 1; b--) {
        gridAt(12 + b * offset, top - b * offset, side, function () { return C.back; }, C.backGrid);
      }
      var taps = {};
      for (var i = 0; i < kw.f; i++) {
        for (var j = 0; j < kw.f; j++) { taps[(oy * kw.s + i * kw.d) + "," + (ox * kw.s + j * kw.d)] = true; }
      }
      gridAt(12, top, side, function (i, j) {
        var pad = i < p || j < p || i >= p + kw.n || j >= p + kw.n;
        if (taps[i + "," + j]) { return pad ? C.tapPad : C.tap; }
        return pad ? C.pad : "#ffffff";
      }, C.grid);
      ctx.strokeStyle = C.edge; ctx.lineWidth = 2;
      ctx.strokeRect(12 + p * cell, top + p * cell, kw.n * cell, kw.n * cell);
      var x1 = 12 + side * cell + stackIn * offset + gap;
      for (b = stackOut; b >= 1; b--) {
        gridAt(x1 + b * offset, top - b * offset, hOut, function () { return C.back; }, C.backGrid);
      }
      ctx.lineWidth = 1;
      gridAt(x1, top, hOut, function (i, j) {
        var k = i * hOut + j;
        return k === position ? C.current : (k < position ? C.done : "#ffffff");
      }, C.grid);
      ctx.strokeStyle = C.window; ctx.lineWidth = 3;
      var span = (kw.d * (kw.f - 1) + 1) * cell;
      ctx.strokeRect(12 + ox * kw.s * cell + 1.5, top + oy * kw.s * cell + 1.5, span - 3, span - 3);
      ctx.strokeRect(x1 + ox * cell + 1.5, top + oy * cell + 1.5, cell - 3, cell - 3);
      ctx.lineWidth = 1;
      ctx.fillStyle = "#222"; ctx.font = font + "px sans-serif"; ctx.textBaseline = "alphabetic"; ctx.textAlign = "left";
      ctx.fillText("input " + kw.c_in + "\u00d7" + kw.n + "\u00d7" + kw.n + (p ? ", padded to " + side + "\u00d7" + side : ""), 12, 16);
      ctx.fillText("output " + kw.c_out + "\u00d7" + hOut + "\u00d7" + hOut, x1, 16);
      where.textContent = "output cell (" + oy + ", " + ox + "), " + (position + 1) + " of " + hOut * hOut +
        " \u2014 press \u2192 / \u2190 to step";
    }

    function step(delta) {
      if (!shown) { return; }
      var count = shown.r.hOut * shown.r.hOut;
      position = (position + delta + count) % count;
      scrub.value = position;
      draw();
    }
    scrub.addEventListener("input", function () { position = Number(scrub.value); draw(); });
    play.addEventListener("click", function () {
      if (timer) { clearInterval(timer); timer = null; play.textContent = "\u25b6 play"; return; }
      play.textContent = "\u275a\u275a pause";
      timer = setInterval(function () {
        if (!root.isConnected) {                 // the output was removed (or scrolled out of a windowed notebook)
          clearInterval(timer); timer = null; play.textContent = "\u25b6 play"; return;
        }
        step(1);
      }, 600);
    });
    root.addEventListener("keydown", function (event) {   // → and ← step the window (not while a control has focus)
      if (event.target !== root && event.target !== play && event.target !== canvas) { return; }
      if (event.key === "ArrowRight") { step(1); event.preventDefault(); }
      else if (event.key === "ArrowLeft") { step(-1); event.preventDefault(); }
    });
    update();
    container.cnnvizLive = {
      set: function (kw) {
        order.forEach(function (name) {
          if (typeof kw[name] === "number") { values[name] = kw[name]; sliders[name].value = kw[name]; outputs[name].textContent = String(kw[name]); }
        });
        modeMenu.value = typeof kw.p === "string" ? kw.p : "number";
        update();
        var r = shown && shown.r;
        return { shown: shown && shown.kw, message: message.textContent, formula: r && r.text, p: r && r.p,
                 hOut: r && r.hOut, params: r && r.params, macs: r && r.macs, frames: r && r.hOut * r.hOut };
      },
      timings: timings, step: step, position: function () { return position; }
    };
  }

  // ------------------------------------------------------------------ entry point

  function mount(container, data) {
    try {
      if (data.kind === "kernel-editor") { mountKernelEditor(container, data); }
      else if (data.kind === "conv-explorer") { mountConvExplorer(container, data); }
      else { throw new Error("unknown explorer " + data.kind); }
    } catch (err) {
      container.textContent = "This live explorer could not start (" + err.message + "); the figures on this page still work.";
    }
  }

  root.cnnvizLive = { version: VERSION, mount: mount, parseEntry: parseEntry, format4g: format4g, pyRepr: pyRepr,
                      convArithmetic: convArithmetic,
                      correlate: correlate, separate: separate, padPlane: padPlane, makeSimdEngine: makeSimdEngine };
})(window);
