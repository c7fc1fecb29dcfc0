// SCIMMY as a peer for roster's SCIM benchmark (scripts/scim-bench.sh):
// `scimmy` + `scimmy-routers` on Express, Users held in memory, served on
// 127.0.0.1 only. The benchmark seeds it over HTTP and drives the same
// requests as against roster and scim2-server.
//
//   node server.mjs --port PORT --token TOKEN [--max-users N]
//
// The handlers are what an in-memory SCIMMY deployment writes: a Map by
// id, plus a userName index so `userName eq "..."` (the benchmark's
// filter, and what IdPs send before a create) is a lookup rather than a
// scan; every other filter goes through SCIMMY's own `Filter.match` over
// all users. Groups are not served: the benchmark does not use them.
import crypto from "node:crypto";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

function arg(name, fallback) {
    const i = process.argv.indexOf(name);
    return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(arg("--port", "0"));
const token = arg("--token", "");
// A bound on memory: the peer refuses creates beyond it.
const maxUsers = Number(arg("--max-users", "1000000"));
if (!Number.isInteger(port) || port <= 0 || port > 65535 || token.length === 0) {
    console.error("usage: node server.mjs --port PORT --token TOKEN [--max-users N]");
    process.exit(2);
}

/** id -> stored user (the SCIM representation without meta.location). */
const users = new Map();
/** lower-cased userName -> id (userName is unique and case-insensitive). */
const byUserName = new Map();

const notFound = (id) => new SCIMMY.Types.Error(404, null, `Resource ${id} not found`);

// The enterprise extension (employeeNumber, department), as the
// benchmark's users carry it.
SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false);
SCIMMY.Resources.declare(SCIMMY.Resources.User)
    .ingress((resource, instance) => {
        const now = new Date();
        const key = String(instance.userName).toLowerCase();
        const holder = byUserName.get(key);
        if (resource.id) {
            const old = users.get(resource.id);
            if (!old) throw notFound(resource.id);
            if (holder !== undefined && holder !== resource.id)
                throw new SCIMMY.Types.Error(409, "uniqueness", "userName is already taken");
            byUserName.delete(String(old.userName).toLowerCase());
            const user = {...instance, id: resource.id, meta: {created: old.meta.created, lastModified: now}};
            users.set(resource.id, user);
            byUserName.set(key, resource.id);
            return user;
        }
        if (holder !== undefined)
            throw new SCIMMY.Types.Error(409, "uniqueness", "userName is already taken");
        if (users.size >= maxUsers)
            throw new SCIMMY.Types.Error(507, null, "the peer holds its maximum number of users");
        const id = crypto.randomUUID();
        const user = {...instance, id, meta: {created: now, lastModified: now}};
        users.set(id, user);
        byUserName.set(key, id);
        return user;
    })
    .egress((resource) => {
        if (resource.id) {
            const user = users.get(resource.id);
            if (!user) throw notFound(resource.id);
            return user;
        }
        const filter = resource.filter;
        if (!filter) return [...users.values()];
        // `userName eq "x"` alone: answer from the index, then let SCIMMY
        // confirm the match.
        const only = filter.length === 1 ? Object.entries(filter[0]) : [];
        if (only.length === 1 && only[0][0].toLowerCase() === "username"
            && Array.isArray(only[0][1]) && only[0][1][0] === "eq") {
            const id = byUserName.get(String(only[0][1][1]).toLowerCase());
            return filter.match(id === undefined ? [] : [users.get(id)]);
        }
        return filter.match([...users.values()]);
    })
    .degress((resource) => {
        const user = users.get(resource.id);
        if (!user) throw notFound(resource.id);
        users.delete(resource.id);
        byUserName.delete(String(user.userName).toLowerCase());
    });

const app = express();
app.disable("x-powered-by");
app.use("/v2", new SCIMMYRouters({
    type: "bearer",
    handler: (request) => {
        if (request.header("Authorization") !== `Bearer ${token}`)
            throw new Error("Authorization failed");
        return "bench";
    },
}));

// Loopback only: this is a benchmark peer, never a service.
const server = app.listen(port, "127.0.0.1", () => {
    console.error(`scimmy peer: ${users.size} users, listening on 127.0.0.1:${port}`);
});
server.keepAliveTimeout = 60_000;
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
