/**
 * Option groups: one complete key list per group, so that options meant for one layer never leak
 * into another (e.g. connection options into `tls.connect`).
 * @internal
 */

/** `options` without the `keys` (a shallow copy). A `Record` of keys makes the list complete by type. @internal */
export const omit = <A extends object, K extends PropertyKey>(options: A, keys: Record<K, true>): Omit<A, K> => {
  const out: Record<PropertyKey, unknown> = {}
  for (const k of Object.keys(options)) if (!(k in keys)) out[k] = (options as Record<PropertyKey, unknown>)[k]
  return out as Omit<A, K>
}
