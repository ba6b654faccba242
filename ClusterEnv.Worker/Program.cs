// The worker process that hosts environments for a ClusterVecEnv arrives with the DETACH issue;
// for now it only states that and exits non-zero so a launcher cannot mistake it for a working worker.
Console.Error.WriteLine("ClusterEnv.Worker: not implemented yet (see the DETACH issue).");
return 2;
