// Patches the installed Prisma CLI (node_modules/prisma/build/index.js) so that
// `prisma migrate resolve --rolled-back` works with `engine: "js"` (driver adapter).
//
// Why: in Prisma 6.19.3, `migrate resolve` creates the driver adapter when the config says
// engine "js", and its --applied branch then skips the "can we connect?" pre-check
// (`adapter || await canConnect(datasource)`), because that pre-check spawns the native
// schema-engine binary. The --rolled-back branch lacks the `adapter ||` guard and always
// runs the pre-check, so without the native binary it fails with
//   "Could not find schema-engine binary".
// The fix gives the --rolled-back branch the same guard as --applied. The actual work,
// markMigrationRolledBack, is then done by the WebAssembly schema engine like every other
// command here.
//
// Idempotent; exits non-zero when the code it expects is not found (another version).
"use strict";
const fs = require("fs");
const path = require("path");

const file = path.join(__dirname, "node_modules", "prisma", "build", "index.js");
const MARK = "/*tend-interop:resolve-rolled-back*/";
let src = fs.readFileSync(file, "utf8");
if (src.includes(MARK)) {
  console.log("patch-prisma: already patched");
  process.exit(0);
}

function fail(msg) {
  console.error(`patch-prisma: ${msg} in ${file}`);
  process.exit(1);
}

// `let ...,u=n.engine==="js"?await n.adapter():void 0;` in MigrateResolve.parse
const adapterVars = [...src.matchAll(/(\w+)=(\w+)\.engine==="js"\?await \2\.adapter\(\):void 0/g)];
// The --rolled-back branch: from its argument check to its markMigrationRolledBack call.
const start = src.indexOf('if(typeof i["--rolled-back"]!="string"');
const end = src.indexOf("markMigrationRolledBack({migrationId:", start);
if (start < 0 || end < 0) fail("the --rolled-back branch of migrate resolve was not found");
const resolveStart = src.lastIndexOf("async parse(", start);
const adapterVar = adapterVars.find((m) => m.index > resolveStart && m.index < start);
if (!adapterVar) fail("the adapter variable of migrate resolve was not found");

const branch = src.slice(start, end);
const check = /await (\w+)\((\w+)\.primaryDatasource\);/g;
const hits = [...branch.matchAll(check)];
if (hits.length !== 1) fail(`expected 1 connection pre-check in the --rolled-back branch, found ${hits.length}`);

const patched = branch.replace(check, `${MARK}${adapterVar[1]}||await $1($2.primaryDatasource);`);
src = src.slice(0, start) + patched + src.slice(end);
fs.writeFileSync(file, src);
console.log(`patch-prisma: migrate resolve --rolled-back now skips the native pre-check when an adapter is set (${adapterVar[1]}||...)`);
