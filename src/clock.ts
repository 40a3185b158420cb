// Time as a dependency, so expiry can be tested without sleeping.

/** Source of the current time. */
export type Clock = { now(): Date };

/** The real clock. */
export const systemClock: Clock = { now: () => new Date() };
