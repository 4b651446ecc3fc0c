// Prisma configuration for the interop check (copied into each scenario's project dir).
//
// Prisma's native schema engine is a binary that the CLI downloads from Prisma's own
// server, which this machine cannot reach. Prisma 6.16+ can instead run the schema
// engine compiled to WebAssembly (shipped inside the `prisma` npm package as
// build/schema_engine_bg.wasm), talking to PostgreSQL through a JavaScript driver
// adapter: `engine: "js"` plus `adapter` below. (Prisma 7 dropped this option again and
// always wants the native binary for migrate.)
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";
import Result from "pg/lib/result.js";

// Work-around: @prisma/adapter-pg 6.19.3 maps each result column's PostgreSQL type to one
// of Prisma's column types and rejects types it does not know. The schema engine's own
// catalog queries return columns of PostgreSQL's internal types `name` (oid 19, e.g.
// information_schema.tables.table_name) and `"char"` (oid 18, e.g. pg_class.relkind),
// so `migrate deploy` on an empty database fails with
//   "Column type 'name' could not be deserialized from the database."
// Both types arrive from `pg` as plain strings, so we relabel them as `text` (oid 25)
// before the adapter looks at them. This touches only result metadata of this process;
// no installed file is patched.
const RELABEL_AS_TEXT = new Set([18, 19]);
const addFields = (Result as any).prototype.addFields;
(Result as any).prototype.addFields = function (fields: Array<{ dataTypeID: number }>) {
  for (const f of fields) if (RELABEL_AS_TEXT.has(f.dataTypeID)) f.dataTypeID = 25;
  return addFields.call(this, fields);
};

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  async adapter() {
    const url = process.env.DATABASE_URL;
    if (!url) throw new Error("DATABASE_URL is not set");
    return new PrismaPg({ connectionString: url });
  },
});
