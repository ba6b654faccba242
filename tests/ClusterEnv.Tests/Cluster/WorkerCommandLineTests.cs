using ClusterEnv.Worker;

namespace ClusterEnv.Tests.Cluster;

public class WorkerCommandLineTests
{
    private static (int? Exit, WorkerOptions Options, string Stderr) Parse(params string[] args)
    {
        var saved = Console.Error;
        var err = new StringWriter();
        Console.SetError(err);
        try
        {
            int? exit = WorkerCommandLine.Parse(args, out var options);
            return (exit, options, err.ToString());
        }
        finally
        {
            Console.SetError(saved);
        }
    }

    [Test]
    public void AFullCommandLine_BecomesTypedOptions()
    {
        var token = Path.GetTempFileName();
        File.WriteAllText(token, "secret\n");
        var (exit, o, _) = Parse("--hub", "http://10.0.0.5:5555", "--env", "Acrobot-v1", "--num-envs", "16", "--worker-id", "node7-003",
            "--token-file", token, "--env-arg", "a=1", "--env-arg", "b=x=y", "--connect-timeout", "2.5", "--parent-pid", "42", "--max-message-size", "128");
        File.Delete(token);
        Assert.That(exit, Is.Null, "go on");
        Assert.Multiple(() =>
        {
            Assert.That(o.Hub, Is.EqualTo(new Uri("http://10.0.0.5:5555")));
            Assert.That((o.EnvId, o.NumEnvs, o.WorkerId, o.Token), Is.EqualTo(("Acrobot-v1", 16, "node7-003", "secret")));
            Assert.That(o.EnvArgs, Is.EqualTo(new Dictionary<string, string> { ["a"] = "1", ["b"] = "x=y" }));
            Assert.That(o.ConnectTimeout, Is.EqualTo(TimeSpan.FromSeconds(2.5)));
            Assert.That(o.ParentPid, Is.EqualTo(42));
            Assert.That(o.MaxMessageSize, Is.EqualTo(128 * 1024 * 1024));
        });
    }

    [Test]
    public void BadArguments_ExitWithTwo_NamingEveryProblem()
    {
        var (exit, _, stderr) = Parse("--hub", "ftp://x", "--env", "CartPole-v1", "--num-envs", "0", "--env-arg", "novalue", "--token-file", "/nonexistent/t");
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("is not an http:// or https:// URL").And.Contain("--num-envs 0 must be at least 1")
            .And.Contain("must look like KEY=VALUE").And.Contain("does not exist").And.Contain("--help"));
        Assert.That(Parse("--env", "CartPole-v1").Stderr, Does.Contain("'--hub' is required"));
        Assert.That(Parse("--hub", "http://h:1", "--env", "CartPole-v1", "--bogus").Exit, Is.EqualTo(2));
        Assert.That(Parse("--hub", "http://h:1", "--env", "CartPole-v1", "--num-envs", "many").Stderr, Does.Contain("'many'"));
    }
}
