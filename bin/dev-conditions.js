// A module resolve hook that switches the `sluice-dev` condition on, as `node --conditions=sluice-dev`
// does: bin/sluice.js registers it in a source checkout started without the condition, so that `#cli`
// and 'sluice', 'sluice/kafka', ... resolve to the TypeScript sources in src/. Not in the published
// package (package.json "files" ships bin/sluice.js only).
const DEV = 'sluice-dev';

export function resolve(specifier, context, nextResolve) {
  const conditions = context.conditions.includes(DEV) ? context.conditions : [...context.conditions, DEV];
  return nextResolve(specifier, { ...context, conditions });
}
