# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_git_vmoat_global_optspecs
    string join \n q/quiet v/verbose backend= h/help V/version
end

function __fish_git_vmoat_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_git_vmoat_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_git_vmoat_using_subcommand
    set -l cmd (__fish_git_vmoat_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -s V -l version -d 'Print version'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "init" -d 'Write a commented vmoat.toml for this project (with the detected up command)'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "provision" -d 'Create or start this worktree\'s VM and provision it (apt packages, script, seeds)'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "up" -d 'Provision, start the stack (commands.up) in the VM, and wait until it is healthy'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "test" -d 'Run the tests (commands.test) in the VM; extra arguments are passed on'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "warm" -d 'Copy the stack\'s images from a sibling worktree\'s VM (done by `up` unless warm = false)'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "tunnel" -d 'Forward the stack\'s ports to 127.0.0.1 and print their URLs (one per line)'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "untunnel" -d 'Close every tunnel of this worktree\'s VM'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "status" -d 'Show the VM, its containers, health, tunnels and background job (--all: every VM of the repo)'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "top" -d 'Show what every VM uses (CPU, memory, disk), how long it has been idle, and its tunnels'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "ssh" -d 'Open a shell in the VM, in the worktree, or run a command there (argv kept as is)'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "down" -d 'Stop the VM (closes tunnels; the disk is kept for the next `up`)'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "suspend" -d 'Suspend the VM: frozen (netns) or stopped (Colima), everything kept; tunnels stay'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "resume" -d 'Resume a suspended VM now (instead of at its next use)'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "destroy" -d 'Delete the VM and its data (closes tunnels). Worktree files are never touched'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "data" -d 'The stack\'s volumes: list them, copy them again from a sibling, snapshot and restore'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "name" -d 'Print this worktree\'s VM name'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "config" -d 'Show the effective configuration and where each value comes from'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "hooks" -d 'Install, remove or inspect the git hook that gives each new worktree its VM'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "seed" -d 'Copy gitignored files (provision.seed, .worktreeinclude) from the main checkout; never overwrites'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "logs" -d 'Show the log of this worktree\'s background job (-f: follow it)'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "watch" -d 'Destroy VMs whose worktree git has forgotten (worktree remove/prune), as it happens'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "gc" -d 'Destroy this repository\'s VMs whose worktree git forgot or whose directory is missing'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "trust" -d 'Approve what this worktree runs by itself (commands, files, mount), legacy config included'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "mcp" -d 'Serve this repository\'s VMs to coding agents: a Model Context Protocol server on stdio'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "version" -d 'Print git-vmoat\'s version'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "completions" -d 'Print the shell completion script (bash, zsh or fish), for `git-vmoat` and `git vmoat`'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "setup" -d 'Install completions for your shell and the man pages where it and `man` find them'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "doctor" -d 'Check everything a first run needs, and say how to fix each gap'
complete -c git-vmoat -n "__fish_git_vmoat_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand init" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand init" -l from-conf -d 'Convert the (trusted) legacy vmoat.conf into vmoat.toml'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand init" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand init" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand provision" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand provision" -l force -d 'Start the VM even when the running VMs and it exceed the memory budget (vm.budget)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand provision" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand provision" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand provision" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand up" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand up" -l force -d 'Start the VM even when the running VMs and it exceed the memory budget (vm.budget)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand up" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand up" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand up" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand test" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand test" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand test" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand test" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand warm" -l from -d 'The sibling to copy from: a worktree path or a VM name (default: the main worktree\'s VM, then any other running one)' -r
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand warm" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand warm" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand warm" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand warm" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand tunnel" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand tunnel" -l json -d 'Print JSON instead of URLs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand tunnel" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand tunnel" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand tunnel" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand untunnel" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand untunnel" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand untunnel" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand untunnel" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand status" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand status" -l all -d 'Every VM of this repository, with its worktree; orphans marked'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand status" -l json -d 'Print JSON (a stable schema with a "version" field)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand status" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand status" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand top" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand top" -l json -d 'Print JSON (a stable schema with a "version" field)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand top" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand top" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand top" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand ssh" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand ssh" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand ssh" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand ssh" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand down" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand down" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand down" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand down" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand suspend" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand suspend" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand suspend" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand suspend" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand resume" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand resume" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand resume" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand resume" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand destroy" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand destroy" -s f -l force -d 'Do not ask for confirmation'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand destroy" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand destroy" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand destroy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and not __fish_seen_subcommand_from ls clone snapshot restore rm help" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and not __fish_seen_subcommand_from ls clone snapshot restore rm help" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and not __fish_seen_subcommand_from ls clone snapshot restore rm help" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and not __fish_seen_subcommand_from ls clone snapshot restore rm help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and not __fish_seen_subcommand_from ls clone snapshot restore rm help" -f -a "ls" -d 'List the VM\'s volumes, their sizes and where each came from, and its snapshots'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and not __fish_seen_subcommand_from ls clone snapshot restore rm help" -f -a "clone" -d 'Copy volumes from a sibling worktree\'s VM again, over this VM\'s (default: warm.volumes)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and not __fish_seen_subcommand_from ls clone snapshot restore rm help" -f -a "snapshot" -d 'Keep a copy of every volume of this VM as snapshot NAME (e.g. before a migration)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and not __fish_seen_subcommand_from ls clone snapshot restore rm help" -f -a "restore" -d 'Put snapshot NAME back over the volumes (their containers are stopped and started again)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and not __fish_seen_subcommand_from ls clone snapshot restore rm help" -f -a "rm" -d 'Delete snapshot NAME'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and not __fish_seen_subcommand_from ls clone snapshot restore rm help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from ls" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from ls" -l all -d 'Every VM of this repository (those not running are listed, not started to measure)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from ls" -l json -d 'Print JSON (a stable schema with a "version" field)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from ls" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from clone" -l from -d 'The sibling to copy from: a worktree path or a VM name (default: the main worktree\'s)' -r
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from clone" -l via -d 'How the files travel between the VMs' -r -f -a "auto\t'Direct where both VMs\' files are on this machine (netns), else stream'
stream\t'`docker cp` out of one daemon into the other, through this process'
direct\t'A file copy from one data root to the other (netns only; reflinked where possible)'"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from clone" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from clone" -s y -l yes -d 'Do not ask before replacing this VM\'s volumes'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from clone" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from clone" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from clone" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from snapshot" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from snapshot" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from snapshot" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from snapshot" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from restore" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from restore" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from restore" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from restore" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from rm" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from rm" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from rm" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List the VM\'s volumes, their sizes and where each came from, and its snapshots'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from help" -f -a "clone" -d 'Copy volumes from a sibling worktree\'s VM again, over this VM\'s (default: warm.volumes)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from help" -f -a "snapshot" -d 'Keep a copy of every volume of this VM as snapshot NAME (e.g. before a migration)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from help" -f -a "restore" -d 'Put snapshot NAME back over the volumes (their containers are stopped and started again)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from help" -f -a "rm" -d 'Delete snapshot NAME'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand data; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand name" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand name" -l json -d 'Print JSON (a stable schema with a "version" field)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand name" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand name" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand name" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand config" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand config" -l json -d 'Print JSON (a stable schema with a "version" field)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand config" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand config" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and not __fish_seen_subcommand_from install uninstall status help" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and not __fish_seen_subcommand_from install uninstall status help" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and not __fish_seen_subcommand_from install uninstall status help" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and not __fish_seen_subcommand_from install uninstall status help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and not __fish_seen_subcommand_from install uninstall status help" -f -a "install" -d 'Install the post-checkout hook (chaining any hook already there), opt this repo in, and approve what new worktrees run by themselves (shown)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and not __fish_seen_subcommand_from install uninstall status help" -f -a "uninstall" -d 'Remove the hook, restore the one it chained, and opt this repo out'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and not __fish_seen_subcommand_from install uninstall status help" -f -a "status" -d 'Show where the hook goes and whether it is installed'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and not __fish_seen_subcommand_from install uninstall status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from install" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from install" -l up -d 'Also start the stack (`up`), not only provision the VM'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from install" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from install" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from install" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from uninstall" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from uninstall" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from uninstall" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from uninstall" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from status" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from status" -l json -d 'Print JSON'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from help" -f -a "install" -d 'Install the post-checkout hook (chaining any hook already there), opt this repo in, and approve what new worktrees run by themselves (shown)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from help" -f -a "uninstall" -d 'Remove the hook, restore the one it chained, and opt this repo out'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show where the hook goes and whether it is installed'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hooks; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand seed" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand seed" -l dry-run -d 'Only say what would be copied'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand seed" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand seed" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand seed" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand logs" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand logs" -s f -l follow -d 'Keep printing while the job runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand logs" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand logs" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand logs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand watch" -l interval -d 'Seconds between full reconciles (the safety net for lost events)' -r
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand watch" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand watch" -l all -d 'Watch every repository that has VMs, not only this one'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand watch" -l install-service -d 'Write a systemd user unit (Linux) or launchd agent (macOS) that runs `watch --all`'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand watch" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand watch" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand gc" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand gc" -l dry-run -d 'Only say what would be destroyed'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand gc" -l all -d 'Every repository git-vmoat has VMs for, not only this one (works outside a repository)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand gc" -l json -d 'Print JSON'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand gc" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand gc" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand gc" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand trust" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand trust" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand trust" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand trust" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand mcp" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand mcp" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand mcp" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand mcp" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand version" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand version" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand version" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand version" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand completions" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand completions" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand completions" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand setup" -l shell -d 'The shell to set up (default: the one $SHELL names)' -r -f -a "bash\t''
zsh\t''
fish\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand setup" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand setup" -l dry-run -d 'Only say what would be done'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand setup" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand setup" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand setup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand doctor" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand doctor" -l json -d 'Print JSON (a stable schema with a "version" field)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand doctor" -l repair -d 'Set damaged state files aside and rebuild the registry from the VMs that exist'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand doctor" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand doctor" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand generate" -l out -r -F
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand generate" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand generate" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand generate" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hook" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hook" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hook" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand hook" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand __job" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand __job" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand __job" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand __job" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand __forward" -l state -r -F
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand __forward" -l vm -r
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand __forward" -l kind -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand __forward" -l backend -d 'The VM backend, overriding the `backend` config key' -r -f -a "auto\t'Colima where installed, else netns where usable'
colima\t''
netns\t''"
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand __forward" -s q -l quiet -d 'Print only errors'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand __forward" -s v -l verbose -d 'Also show every command git-vmoat runs'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand __forward" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "init" -d 'Write a commented vmoat.toml for this project (with the detected up command)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "provision" -d 'Create or start this worktree\'s VM and provision it (apt packages, script, seeds)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "up" -d 'Provision, start the stack (commands.up) in the VM, and wait until it is healthy'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "test" -d 'Run the tests (commands.test) in the VM; extra arguments are passed on'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "warm" -d 'Copy the stack\'s images from a sibling worktree\'s VM (done by `up` unless warm = false)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "tunnel" -d 'Forward the stack\'s ports to 127.0.0.1 and print their URLs (one per line)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "untunnel" -d 'Close every tunnel of this worktree\'s VM'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "status" -d 'Show the VM, its containers, health, tunnels and background job (--all: every VM of the repo)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "top" -d 'Show what every VM uses (CPU, memory, disk), how long it has been idle, and its tunnels'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "ssh" -d 'Open a shell in the VM, in the worktree, or run a command there (argv kept as is)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "down" -d 'Stop the VM (closes tunnels; the disk is kept for the next `up`)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "suspend" -d 'Suspend the VM: frozen (netns) or stopped (Colima), everything kept; tunnels stay'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "resume" -d 'Resume a suspended VM now (instead of at its next use)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "destroy" -d 'Delete the VM and its data (closes tunnels). Worktree files are never touched'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "data" -d 'The stack\'s volumes: list them, copy them again from a sibling, snapshot and restore'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "name" -d 'Print this worktree\'s VM name'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "config" -d 'Show the effective configuration and where each value comes from'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "hooks" -d 'Install, remove or inspect the git hook that gives each new worktree its VM'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "seed" -d 'Copy gitignored files (provision.seed, .worktreeinclude) from the main checkout; never overwrites'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "logs" -d 'Show the log of this worktree\'s background job (-f: follow it)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "watch" -d 'Destroy VMs whose worktree git has forgotten (worktree remove/prune), as it happens'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "gc" -d 'Destroy this repository\'s VMs whose worktree git forgot or whose directory is missing'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "trust" -d 'Approve what this worktree runs by itself (commands, files, mount), legacy config included'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "mcp" -d 'Serve this repository\'s VMs to coding agents: a Model Context Protocol server on stdio'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "version" -d 'Print git-vmoat\'s version'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "completions" -d 'Print the shell completion script (bash, zsh or fish), for `git-vmoat` and `git vmoat`'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "setup" -d 'Install completions for your shell and the man pages where it and `man` find them'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "doctor" -d 'Check everything a first run needs, and say how to fix each gap'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and not __fish_seen_subcommand_from init provision up test warm tunnel untunnel status top ssh down suspend resume destroy data name config hooks seed logs watch gc trust mcp version completions setup doctor generate hook __job __forward help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and __fish_seen_subcommand_from data" -f -a "ls" -d 'List the VM\'s volumes, their sizes and where each came from, and its snapshots'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and __fish_seen_subcommand_from data" -f -a "clone" -d 'Copy volumes from a sibling worktree\'s VM again, over this VM\'s (default: warm.volumes)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and __fish_seen_subcommand_from data" -f -a "snapshot" -d 'Keep a copy of every volume of this VM as snapshot NAME (e.g. before a migration)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and __fish_seen_subcommand_from data" -f -a "restore" -d 'Put snapshot NAME back over the volumes (their containers are stopped and started again)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and __fish_seen_subcommand_from data" -f -a "rm" -d 'Delete snapshot NAME'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and __fish_seen_subcommand_from hooks" -f -a "install" -d 'Install the post-checkout hook (chaining any hook already there), opt this repo in, and approve what new worktrees run by themselves (shown)'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and __fish_seen_subcommand_from hooks" -f -a "uninstall" -d 'Remove the hook, restore the one it chained, and opt this repo out'
complete -c git-vmoat -n "__fish_git_vmoat_using_subcommand help; and __fish_seen_subcommand_from hooks" -f -a "status" -d 'Show where the hook goes and whether it is installed'

# `git vmoat <TAB>`: complete with git-vmoat's own completions.
function __git_vmoat_complete
    set -l tokens (commandline -opc)
    set -e tokens[1..2]
    complete -C "git-vmoat $tokens "(commandline -ct)
end
complete -c git -n '__fish_seen_subcommand_from vmoat' -f -a '(__git_vmoat_complete)'
