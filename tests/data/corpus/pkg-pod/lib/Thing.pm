package Thing;
use strict;
sub new { my ($class, %args) = @_; return bless {%args}, $class; }
1;
__END__

=head1 NAME

Thing - a module that holds things

=head1 DESCRIPTION

The B<Thing> module keeps a collection of things, and it lets you add, remove and count them with a small and friendly interface.

    my $t = Thing->new(size => 3);
    $t->add("apple");

Comparisons use the E<lt> and E<gt> operators, and the I<count> method returns how many things the collection currently holds.

=begin html

<p>This HTML section is only for the HTML formatter and is dropped from the corpus completely.</p>

=end html

=cut
