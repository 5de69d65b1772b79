/**
 * K-best lists of stage candidates for the latency DP's sliding window: (w, c, e) = value, the stage's end
 * boundary, and the suffix that follows (an S item id, -1 for none). Kept sorted by (w, c, suffix key).
 */
export class KList {
  readonly w: Float64Array;
  readonly c: Int32Array;
  readonly e: Int32Array;
  n = 0;
  constructor(K: number) {
    this.w = new Float64Array(K);
    this.c = new Int32Array(K);
    this.e = new Int32Array(K);
  }
}

export function copyList(from: KList, to: KList): void {
  to.n = from.n;
  for (let i = 0; i < from.n; i++) {
    to.w[i] = from.w[i];
    to.c[i] = from.c[i];
    to.e[i] = from.e[i];
  }
}

/** The K best of two sorted lists into `out` (a third list). `cmpKey` orders two suffixes. */
export function mergeLists(a: KList, b: KList, out: KList, K: number, cmpKey: (x: number, y: number) => number): void {
  let i = 0;
  let j = 0;
  let n = 0;
  while (n < K && (i < a.n || j < b.n)) {
    let takeA: boolean;
    if (i >= a.n) takeA = false;
    else if (j >= b.n) takeA = true;
    else takeA = (a.w[i] - b.w[j] || a.c[i] - b.c[j] || cmpKey(a.e[i], b.e[j])) <= 0;
    if (takeA) {
      out.w[n] = a.w[i];
      out.c[n] = a.c[i];
      out.e[n] = a.e[i];
      i++;
    } else {
      out.w[n] = b.w[j];
      out.c[n] = b.c[j];
      out.e[n] = b.e[j];
      j++;
    }
    n++;
  }
  out.n = n;
}
