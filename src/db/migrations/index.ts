// The migrations, listed statically: the MikroORM CLI cannot load .ts under plain Node,
// so `keyward migrate` and startup run the migrator with this list.
import { Migration20261123000001Initial } from "./Migration20261123000001Initial.ts";

/** Every migration, oldest first. */
export const migrations = [
  { name: "Migration20261123000001Initial", class: Migration20261123000001Initial },
];
