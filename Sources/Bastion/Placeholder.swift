import CLibSSH
enum BastionModule {}
